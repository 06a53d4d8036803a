package gate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/shipkit/shipkit/deploy"
)

// The gate's reasons about registries.
const (
	// ReasonRegistryNotAllowed: the image's registry is not in the allow-list of
	// [WithRegistries]; nothing is fetched from it.
	ReasonRegistryNotAllowed deploy.ReasonCode = "registry-not-allowed"
	// ReasonInsecureRegistry: the image's registry would be read over plain HTTP
	// (go-containerregistry falls back to HTTP for localhost, *.localhost, 127.0.0.1,
	// ::1 and private addresses) and is not listed in [Registries].Insecure. A gate
	// with a verifier and no allow-list refuses every such registry; nothing is
	// fetched from it.
	ReasonInsecureRegistry deploy.ReasonCode = "insecure-registry"
)

// Registries is an allow-list of the registries a gate reads signatures and
// attestations from. Whoever names an image chooses where the gate connects: in an
// admission webhook, anyone who may create a pod. Without an allow-list the gate
// lets its verifier read any registry over HTTPS, including names that resolve to
// addresses inside the cluster's network, and refuses plain HTTP; with one, only
// the registries listed, and plain HTTP only to those in Insecure.
type Registries struct {
	// Hosts lists the registries allowed by name, as images name them: a host with
	// an optional port ("ghcr.io", "registry.internal:5000"; "docker.io" means
	// index.docker.io), or "*.example.com" for every host below example.com. An
	// entry without a port allows the default port only.
	Hosts []string
	// CIDRs allows the registries named by an IP address in one of these
	// networks, on any port, and lets [Registries.Transport] connect to them.
	CIDRs []netip.Prefix
	// Insecure lists the registries (host:port as images name them) that may be
	// read over plain HTTP; each is allowed as if it were in Hosts.
	Insecure []string
}

// allowList is a Registries, parsed.
type allowList struct {
	hosts     map[string]bool // host or host:port, lower case
	wildcards []string        // ".example.com"
	cidrs     []netip.Prefix
	insecure  map[string]bool // host:port or host, lower case
}

// WithRegistries makes the gate read only from the registries r allows: an image
// from another registry is denied with [ReasonRegistryNotAllowed], one that would
// be read over plain HTTP without being listed as insecure with
// [ReasonInsecureRegistry], and the verifier is not called for either. The gate
// checks the names images give, nothing more: give the verifier r's
// [Registries.Transport] too (sign/cosign.WithTransport), or an allowed registry's
// redirect, or a name that resolves inside the network, takes it elsewhere. New
// fails on an entry that is not a registry name or a network.
func WithRegistries(r Registries) Option {
	return func(g *Gate) {
		g.registries, g.registriesProblems = r.parse()
	}
}

// parse returns the allow-list, or what is wrong with r, one entry per problem.
func (r Registries) parse() (*allowList, []string) {
	a := &allowList{hosts: map[string]bool{}, insecure: map[string]bool{}}
	var errs []string
	for _, h := range r.Hosts {
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			reg, err := registryName(rest)
			if err != nil || strings.Contains(reg, ":") {
				errs = append(errs, fmt.Sprintf("host %q: want *.domain, without a port", h))
				continue
			}
			a.wildcards = append(a.wildcards, "."+reg)
			continue
		}
		reg, err := registryName(h)
		if err != nil {
			errs = append(errs, fmt.Sprintf("host %q: %v", h, err))
			continue
		}
		a.hosts[reg] = true
	}
	for _, h := range r.Insecure {
		reg, err := registryName(h)
		if err != nil {
			errs = append(errs, fmt.Sprintf("insecure registry %q: %v", h, err))
			continue
		}
		a.insecure[reg] = true
	}
	for _, p := range r.CIDRs {
		if !p.IsValid() {
			errs = append(errs, fmt.Sprintf("network %v is not valid", p))
			continue
		}
		a.cidrs = append(a.cidrs, p.Masked())
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return a, nil
}

// registryName normalises a registry as images name it.
func registryName(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, "/@ ") {
		return "", errors.New("want a host with an optional port, no scheme or path")
	}
	reg, err := name.NewRegistry(strings.ToLower(s), name.StrictValidation)
	if err != nil {
		return "", err
	}
	return reg.RegistryStr(), nil
}

// check returns the reason the allow-list refuses reg, or "".
func (a *allowList) check(reg name.Registry) (deploy.ReasonCode, string) {
	hostport := strings.ToLower(reg.RegistryStr())
	if a.insecure[hostport] {
		return "", ""
	}
	if !a.allowed(hostport) {
		return ReasonRegistryNotAllowed, fmt.Sprintf("registry %s is not in the gate's allow-list of registries: nothing is fetched from it", hostport)
	}
	if reg.Scheme() == "http" {
		return ReasonInsecureRegistry, fmt.Sprintf("registry %s would be read over plain HTTP and is not listed as an insecure registry", hostport)
	}
	return "", ""
}

func (a *allowList) allowed(hostport string) bool {
	host, port := splitHostPort(hostport)
	if a.hosts[hostport] || (port == "" || port == "443") && a.hosts[host] {
		return true
	}
	if port == "" || port == "443" {
		for _, w := range a.wildcards {
			if strings.HasSuffix(host, w) {
				return true
			}
		}
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return a.inCIDRs(ip)
	}
	return false
}

func (a *allowList) inCIDRs(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.cidrs {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// named reports whether host:port is a registry named exactly in Hosts or
// Insecure (not through a wildcard or a network): the transport trusts whatever
// address such a name resolves to.
func (a *allowList) named(host, port string) bool {
	host = strings.ToLower(host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	for _, set := range []map[string]bool{a.hosts, a.insecure} {
		if set[host+":"+port] || set[host] {
			return true
		}
	}
	return false
}

func splitHostPort(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		return h, p
	}
	return hostport, ""
}

// Transport returns an http.RoundTripper for the gate's verifier (for example
// sign/cosign.WithTransport) that keeps to the allow-list where a request really
// goes, after redirects (registries redirect blob reads to storage hosts) and DNS:
//
//   - it connects to public addresses, to addresses in CIDRs, and to any address
//     of a registry named exactly in Hosts or Insecure; any other loopback,
//     private, link-local (cloud metadata), shared or reserved address is refused
//     when the connection is made, after DNS resolved it, so a name that resolves
//     (or rebinds) to an inside address gets nowhere;
//   - it sends plain-HTTP requests to the registries in Insecure only;
//   - it uses no proxy, which would connect where the checks cannot see.
//
// base supplies TLS settings and timeouts (nil: a clone of
// http.DefaultTransport); its Proxy and DialContext are replaced. A refused
// connection or request fails with a *[RefusedError].
func (r Registries) Transport(base *http.Transport) (http.RoundTripper, error) {
	a, problems := r.parse()
	if len(problems) > 0 {
		return nil, fmt.Errorf("gate: registries: %s", strings.Join(problems, "; "))
	}
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	t.Proxy = nil
	dialer := &net.Dialer{Timeout: defaultDialTimeout, KeepAlive: defaultDialTimeout}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		d := *dialer
		trusted := a.named(host, port)
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			switch {
			case err != nil:
				return &RefusedError{Host: host, Why: "not an IP address: " + address}
			case trusted || a.inCIDRs(ap.Addr()) || public(ap.Addr()):
				return nil
			}
			return &RefusedError{Host: host, Why: fmt.Sprintf("address %s is not public, not in the allowed networks and %s is not an allowed registry", ap.Addr(), host)}
		}
		return d.DialContext(ctx, network, addr)
	}
	return &guarded{next: t, allow: a}, nil
}

// defaultDialTimeout is http.DefaultTransport's.
const defaultDialTimeout = 30 * time.Second

// guarded refuses plain-HTTP requests to registries not listed as insecure.
type guarded struct {
	next  http.RoundTripper
	allow *allowList
}

func (g *guarded) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		hostport := strings.ToLower(req.URL.Host)
		host, port := splitHostPort(hostport)
		if !g.allow.insecure[hostport] && (port != "80" || !g.allow.insecure[host]) {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, &RefusedError{Host: req.URL.Host, Why: req.URL.Scheme + " is allowed only to the registries listed as insecure"}
		}
	}
	return g.next.RoundTrip(req)
}

// special holds the networks that are not public besides those netip knows
// (loopback, private, link-local, multicast, unspecified).
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64: an IPv4 address inside
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2002::/16"),      // 6to4: an IPv4 address inside
	netip.MustParsePrefix("fec0::/10"),      // site-local
}

// public reports whether ip is a public unicast address.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() {
		return false
	}
	for _, p := range special {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// RefusedError is a connection or request [Registries.Transport] refused.
type RefusedError struct {
	Host string
	Why  string
}

// Error says what was refused and why.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("gate: registry allow-list: %s refused: %s", e.Host, e.Why)
}

// VerifyError is a failure to verify one image, not a denial: the registry
// could not be reached or answered with an error, or the verifier failed. Failure
// says which, in words that hold nothing the registry sent, so it can be shown to
// whoever named the image; Err, the cause, can hold a registry's response body and
// belongs in logs.
type VerifyError struct {
	Image   name.Digest
	Failure string
	Err     error
}

// Error names the image and the cause.
func (e *VerifyError) Error() string { return fmt.Sprintf("gate: verify image %s: %v", e.Image, e.Err) }

// Unwrap returns the cause.
func (e *VerifyError) Unwrap() error { return e.Err }

func verifyError(d name.Digest, err error) *VerifyError {
	return &VerifyError{Image: d, Failure: failure(err), Err: err}
}

// failure names the kind of err without its text.
func failure(err error) string {
	var (
		refused *RefusedError
		status  *transport.Error
		cert    *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		dns     *net.DNSError
		op      *net.OpError
	)
	switch {
	case errors.As(err, &refused):
		return "the registry allow-list refused the connection"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.As(err, &status):
		return fmt.Sprintf("the registry answered HTTP %d", status.StatusCode)
	case errors.As(err, &cert), errors.As(err, &unknown):
		return "the registry's TLS certificate is not trusted"
	case errors.As(err, &dns):
		return "the registry's name does not resolve"
	case errors.As(err, &op):
		return "the registry cannot be reached"
	}
	return "the verifier failed"
}
