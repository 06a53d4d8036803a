package registry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/shipkit/shipkit/internal/testbed"
)

// startTimeout bounds how long the registry may take to answer.
const startTimeout = 60 * time.Second

// Distribution is a running CNCF distribution registry (Debian's docker-registry 2.8)
// that serves TLS with a certificate from a private CA and accepts one htpasswd user.
type Distribution struct {
	// Host is "127.0.0.1:PORT".
	Host string
	// Username and Password are the credentials of the registry's one user.
	Username, Password string
	// CAPool trusts the private CA that signed the server's certificate, and nothing else.
	CAPool *x509.CertPool
	// CACertPEM is that CA's certificate, PEM encoded, for tools that read a file.
	CACertPEM []byte
	// Transport trusts CAPool. Pass it with remote.WithTransport, or use [Distribution.RemoteOptions].
	Transport *http.Transport

	proc     *testbed.Process
	dir      string
	stopOnce sync.Once
}

// Start starts a distribution registry in the shape testbed.Lazy wants:
//
//	var reg = testbed.Lazy[*registry.Distribution]{Start: registry.Start}
func Start() (*Distribution, func(), error) {
	d, err := StartDistribution(context.Background())
	if err != nil {
		return nil, nil, err
	}
	return d, d.Stop, nil
}

// StartDistribution starts docker-registry as a child process on 127.0.0.1 with a random
// port, its configuration, certificates, htpasswd file and storage in a new temporary
// directory, and waits until it answers /v2/. The process lives until Stop is called or
// ctx ends. A missing docker-registry binary is reported with [testbed.ErrMissing].
func StartDistribution(ctx context.Context) (*Distribution, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, testbed.Missingf("distribution registry: docker-registry (Debian package docker-registry) not in PATH")
	}
	dir, err := os.MkdirTemp("", "shipkit-registry-")
	if err != nil {
		return nil, fmt.Errorf("distribution registry: make temporary directory: %w", err)
	}
	d, err := prepare(dir)
	if err == nil {
		err = testbed.RetryOnPortTaken(func() error { return d.start(ctx, bin) })
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("distribution registry: %w", err)
	}
	return d, nil
}

// prepare writes the certificates and the htpasswd file into dir.
func prepare(dir string) (*Distribution, error) {
	now := time.Now()
	ca, err := newAuthority("shipkit test bed registry CA", now)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.issueServer(now, "127.0.0.1", "localhost", "::1")
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, secret); err != nil {
		return nil, fmt.Errorf("generate password: %w", err)
	}
	d := &Distribution{
		Username:  "shipkit",
		Password:  hex.EncodeToString(secret),
		CAPool:    ca.pool(),
		CACertPEM: ca.certPEM,
		dir:       dir,
	}
	d.Transport = http.DefaultTransport.(*http.Transport).Clone()
	d.Transport.Proxy = nil
	d.Transport.TLSClientConfig = &tls.Config{RootCAs: d.CAPool, MinVersion: tls.VersionTLS12}
	// The registry checks the password on every request: the minimum bcrypt cost keeps a
	// push from spending seconds in bcrypt on a busy machine.
	hash, err := bcrypt.GenerateFromPassword([]byte(d.Password), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	files := map[string][]byte{
		"ca.crt":     ca.certPEM,
		"server.crt": certPEM,
		"server.key": keyPEM,
		"htpasswd":   fmt.Appendf(nil, "%s:%s\n", d.Username, hash),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	return d, nil
}

// start writes a configuration for a free port, starts the registry and waits until it
// answers. It returns an error wrapping [testbed.ErrPortTaken] when the port was taken
// meanwhile.
func (d *Distribution) start(ctx context.Context, bin string) error {
	addr, err := testbed.FreeAddr()
	if err != nil {
		return err
	}
	secret := make([]byte, 16)
	if _, err := io.ReadFull(rand.Reader, secret); err != nil {
		return fmt.Errorf("generate HTTP secret: %w", err)
	}
	// JSON is YAML: encoding/json quotes paths safely.
	cfg, err := json.MarshalIndent(map[string]any{
		"version": "0.1",
		"log":     map[string]any{"level": "info", "formatter": "text", "accesslog": map[string]any{"disabled": true}},
		"storage": map[string]any{
			"filesystem":  map[string]any{"rootdirectory": filepath.Join(d.dir, "data")},
			"delete":      map[string]any{"enabled": true},
			"maintenance": map[string]any{"uploadpurging": map[string]any{"enabled": false}},
		},
		"http": map[string]any{
			"addr":   addr,
			"secret": hex.EncodeToString(secret),
			"tls": map[string]any{
				"certificate": filepath.Join(d.dir, "server.crt"),
				"key":         filepath.Join(d.dir, "server.key"),
			},
		},
		"auth": map[string]any{"htpasswd": map[string]any{
			"realm": "shipkit-testbed",
			"path":  filepath.Join(d.dir, "htpasswd"),
		}},
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode configuration: %w", err)
	}
	cfgPath := filepath.Join(d.dir, "config.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return fmt.Errorf("write configuration: %w", err)
	}
	// The default, minimal environment keeps REGISTRY_* variables of the caller's out.
	p, err := testbed.StartProcess(ctx, testbed.ProcessConfig{Bin: bin, Args: []string{"serve", cfgPath}, Dir: d.dir})
	if err != nil {
		return err
	}
	client := &http.Client{Transport: d.Transport, Timeout: 5 * time.Second}
	wctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	err = testbed.WaitFor(wctx, "docker-registry to answer", func(ctx context.Context) error {
		return checkV2(ctx, client, "https://"+addr+"/v2/")
	}, p)
	if err != nil {
		p.Stop()
		return err
	}
	d.Host, d.proc = addr, p
	return nil
}

// checkV2 expects the registry to refuse an anonymous /v2/ with 401.
func checkV2(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("GET %s: got %s, want 401 Unauthorized", url, resp.Status)
	}
	return nil
}

// Authenticator returns basic auth for the registry's user.
func (d *Distribution) Authenticator() authn.Authenticator {
	return &authn.Basic{Username: d.Username, Password: d.Password}
}

// Keychain returns a keychain that knows the registry's user for [Distribution.Host]
// and is anonymous elsewhere.
func (d *Distribution) Keychain() authn.Keychain { return keychain{d} }

type keychain struct{ d *Distribution }

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.d.Host {
		return k.d.Authenticator(), nil
	}
	return authn.Anonymous, nil
}

// RemoteOptions returns the remote options that reach the registry: its transport and its
// user's credentials.
func (d *Distribution) RemoteOptions() []remote.Option {
	return []remote.Option{remote.WithTransport(d.Transport), remote.WithAuth(d.Authenticator())}
}

// Log returns the tail of the registry's log.
func (d *Distribution) Log() string { return d.proc.Tail(100) }

// Stop kills the registry and removes its directory. It is safe to call more than once.
func (d *Distribution) Stop() {
	d.stopOnce.Do(func() {
		d.proc.Stop()
		d.Transport.CloseIdleConnections()
		_ = os.RemoveAll(d.dir)
	})
}
