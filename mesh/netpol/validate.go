package netpol

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Validate returns every problem of the policy, each naming its field, or nil.
func (p Policy) Validate() error {
	var errs []error
	add := func(field string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	if p.Namespace == "" {
		add("namespace", errors.New("empty"))
	}
	for _, msg := range validation.IsDNS1123Label(p.Namespace) {
		if p.Namespace != "" {
			add("namespace", fmt.Errorf("%q: %s", p.Namespace, msg))
		}
	}
	if p.AllowDNS && !p.DenyEgress {
		add("allowDNS", errors.New("needs denyEgress (without it every egress, DNS included, is allowed)"))
	}
	for i, in := range p.Ingress {
		f := fmt.Sprintf("ingress[%d]", i)
		_, err := selector(in.To, false)
		add(f+".to", err)
		add(f+".from", peers(in.From, "who may connect"))
		add(f+".ports", ports(in.Ports))
	}
	for i, eg := range p.Egress {
		f := fmt.Sprintf("egress[%d]", i)
		_, err := selector(eg.From, false)
		add(f+".from", err)
		add(f+".to", peers(eg.To, "where the pods may connect"))
		add(f+".ports", ports(eg.Ports))
	}
	for _, k := range slices.Sorted(maps.Keys(p.Labels)) {
		for _, msg := range validation.IsQualifiedName(k) {
			add("labels", fmt.Errorf("key %q: %s", k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(p.Labels[k]) {
			add("labels", fmt.Errorf("%s value %q: %s", k, p.Labels[k], msg))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netpol: %w", err)
	}
	return nil
}

// selector parses a label selector. An empty one is an error unless emptyOK; so is
// key= with an empty value, which is almost always a typo.
func selector(s string, emptyOK bool) (*metav1.LabelSelector, error) {
	if strings.TrimSpace(s) == "" {
		if emptyOK {
			return &metav1.LabelSelector{}, nil
		}
		return nil, errors.New(`empty selector: name the pods by their labels ("app=api")`)
	}
	sel, err := metav1.ParseToLabelSelector(s)
	if err != nil {
		// The parser's field errors carry no path and print it as "<nil>".
		return nil, fmt.Errorf("selector %q: %s", s, strings.ReplaceAll(strings.TrimPrefix(err.Error(), fmt.Sprintf("couldn't parse the selector string %q: ", s)), "<nil>: ", ""))
	}
	for _, k := range slices.Sorted(maps.Keys(sel.MatchLabels)) {
		if sel.MatchLabels[k] == "" {
			return nil, fmt.Errorf("selector %q: label %s has an empty value", s, k)
		}
	}
	// The parser leaves empty, not nil, what the selector does not use.
	if len(sel.MatchLabels) == 0 {
		sel.MatchLabels = nil
	}
	if len(sel.MatchExpressions) == 0 {
		sel.MatchExpressions = nil
	}
	return sel, nil
}

// peers checks a rule's peers: there is at least one, Anywhere stands alone, and
// each is a selector or an IP block.
func peers(ps []Peer, who string) error {
	if len(ps) == 0 {
		return fmt.Errorf("empty: say %s (netpol.Anywhere for any peer)", who)
	}
	var errs []error
	for i, p := range ps {
		if p.anywhere {
			if len(ps) > 1 {
				errs = append(errs, fmt.Errorf("[%d]: netpol.Anywhere together with other peers, which it already includes", i))
			}
			continue
		}
		if err := p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (p Peer) validate() error {
	if p.CIDR != "" {
		if p.Pods != "" || p.Namespaces != "" {
			return fmt.Errorf("CIDR %s together with a pod or namespace selector; make them two peers", p.CIDR)
		}
		return cidr(p.CIDR, p.Except)
	}
	if len(p.Except) > 0 {
		return errors.New("except without a CIDR")
	}
	if strings.TrimSpace(p.Pods) == "" && strings.TrimSpace(p.Namespaces) == "" {
		return errors.New("empty peer: give pods, namespaces or a CIDR (netpol.Anywhere for any peer)")
	}
	if _, err := selector(p.Pods, p.Namespaces != ""); err != nil {
		return fmt.Errorf("pods: %w", err)
	}
	if p.Namespaces != "" {
		if _, err := selector(p.Namespaces, false); err != nil {
			return fmt.Errorf("namespaces: %w", err)
		}
	}
	return nil
}

// cidr checks an IP block: a network address, with exceptions strictly inside it.
func cidr(block string, except []string) error {
	pfx, err := netip.ParsePrefix(block)
	if err != nil {
		return fmt.Errorf("CIDR %q: %w", block, err)
	}
	if pfx.Masked() != pfx {
		return fmt.Errorf("CIDR %s is not a network address (did you mean %s?)", block, pfx.Masked())
	}
	for _, e := range except {
		ex, err := netip.ParsePrefix(e)
		if err != nil {
			return fmt.Errorf("except %q: %w", e, err)
		}
		if ex.Masked() != ex || !pfx.Contains(ex.Addr()) || ex.Bits() <= pfx.Bits() {
			return fmt.Errorf("except %s is not a network strictly inside %s", e, block)
		}
	}
	return nil
}

// ports checks a rule's ports: there is at least one, AnyPort stands alone, and
// each is a valid number, range or name.
func ports(ps []Port) error {
	if len(ps) == 0 {
		return errors.New("empty: list the ports (netpol.AnyPort for every port)")
	}
	var errs []error
	for i, p := range ps {
		if p.any {
			if len(ps) > 1 {
				errs = append(errs, fmt.Errorf("[%d]: netpol.AnyPort together with other ports, which it already includes", i))
			}
			continue
		}
		if err := p.validate(); err != nil {
			errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (p Port) validate() error {
	switch p.Protocol {
	case "", corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
	default:
		return fmt.Errorf("protocol %q: want TCP, UDP or SCTP", p.Protocol)
	}
	if p.Name != "" {
		if p.Port != 0 || p.EndPort != 0 {
			return fmt.Errorf("port name %q together with a number; give one of them", p.Name)
		}
		if msgs := validation.IsValidPortName(p.Name); len(msgs) > 0 {
			return fmt.Errorf("port name %q: %s", p.Name, strings.Join(msgs, "; "))
		}
		return nil
	}
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("port %d is outside 1-65535", p.Port)
	}
	if p.EndPort != 0 && (p.EndPort < p.Port || p.EndPort > 65535) {
		return fmt.Errorf("port range %d-%d: the end must be between %d and 65535", p.Port, p.EndPort, p.Port)
	}
	return nil
}
