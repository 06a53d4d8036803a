package netpol

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The names of the policies that do not depend on a selector.
const (
	DefaultDenyName = "default-deny"
	AllowDNSName    = "allow-dns"
)

// Objects validates the policy and renders its NetworkPolicies as unstructured
// objects, in the order of [Policy.NetworkPolicies].
func (p Policy) Objects() ([]*unstructured.Unstructured, error) {
	nps, err := p.NetworkPolicies()
	if err != nil {
		return nil, err
	}
	objs := make([]*unstructured.Unstructured, 0, len(nps))
	for i := range nps {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&nps[i])
		if err != nil {
			return nil, fmt.Errorf("netpol: NetworkPolicy %s: %w", nps[i].Name, err)
		}
		u := &unstructured.Unstructured{Object: m}
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		objs = append(objs, u)
	}
	return objs, nil
}

// NetworkPolicies validates the policy and renders it: first default-deny (every
// pod of the namespace, ingress and, with DenyEgress, egress), then allow-dns (with
// AllowDNS), then one "ingress-<selector>" policy per selector of Ingress.To and one
// "egress-<selector>" per selector of Egress.From (and, with DenyEgress, of the
// same-namespace pods that ingress rules let connect), in the order they first
// appear. Rules for the same pods share one policy; NetworkPolicies add up.
func (p Policy) NetworkPolicies() ([]networkingv1.NetworkPolicy, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	deny := p.policy(DefaultDenyName, metav1.LabelSelector{}, networkingv1.PolicyTypeIngress)
	if p.DenyEgress {
		deny.Spec.PolicyTypes = append(deny.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	}
	out := []networkingv1.NetworkPolicy{deny}
	if p.AllowDNS {
		dns := p.policy(AllowDNSName, metav1.LabelSelector{}, networkingv1.PolicyTypeEgress)
		dns.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: metav1.NamespaceSystem}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
			}},
			Ports: []networkingv1.NetworkPolicyPort{port(UDP(53)), port(TCP(53))},
		}}
		out = append(out, dns)
	}

	ingress, egress := &groups{prefix: "ingress-"}, &groups{prefix: "egress-"}
	for _, in := range p.Ingress {
		g := ingress.get(in.To)
		g.ingress = append(g.ingress, networkingv1.NetworkPolicyIngressRule{From: renderPeers(in.From), Ports: renderPorts(in.Ports)})
	}
	for _, eg := range p.Egress {
		g := egress.get(eg.From)
		g.egress = append(g.egress, networkingv1.NetworkPolicyEgressRule{To: renderPeers(eg.To), Ports: renderPorts(eg.Ports)})
	}
	if p.DenyEgress {
		// The senders of an ingress rule in this namespace may send to its pods.
		for _, in := range p.Ingress {
			to, _ := selector(in.To, false)
			for _, peer := range in.From {
				if peer.anywhere || peer.CIDR != "" || peer.Namespaces != "" {
					continue
				}
				g := egress.get(peer.Pods)
				g.egress = append(g.egress, networkingv1.NetworkPolicyEgressRule{
					To:    []networkingv1.NetworkPolicyPeer{{PodSelector: to}},
					Ports: renderPorts(in.Ports),
				})
			}
		}
	}
	for _, g := range ingress.names() {
		np := p.policy(g.name, *g.sel, networkingv1.PolicyTypeIngress)
		np.Spec.Ingress = g.ingress
		out = append(out, np)
	}
	for _, g := range egress.names() {
		np := p.policy(g.name, *g.sel, networkingv1.PolicyTypeEgress)
		np.Spec.Egress = g.egress
		out = append(out, np)
	}
	return out, nil
}

func (p Policy) policy(name string, pods metav1.LabelSelector, types ...networkingv1.PolicyType) networkingv1.NetworkPolicy {
	np := networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.Namespace},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: pods, PolicyTypes: types},
	}
	if len(p.Labels) > 0 {
		np.Labels = map[string]string{}
		for k, v := range p.Labels {
			np.Labels[k] = v
		}
	}
	return np
}

// group is the rules of one pod selector.
type group struct {
	key     string // the selector, formatted canonically
	sel     *metav1.LabelSelector
	name    string
	ingress []networkingv1.NetworkPolicyIngressRule
	egress  []networkingv1.NetworkPolicyEgressRule
}

// groups collects rules by selector, in the order the selectors first appear.
type groups struct {
	prefix string
	list   []*group
}

// get returns the group of a (valid) selector, adding it if new.
func (gs *groups) get(s string) *group {
	sel, _ := selector(s, false)
	key := metav1.FormatLabelSelector(sel)
	for _, g := range gs.list {
		if g.key == key {
			return g
		}
	}
	g := &group{key: key, sel: sel}
	gs.list = append(gs.list, g)
	return g
}

// nonName matches what may not appear in an object name.
var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// names names the groups prefix+selector ("ingress-app-api"). Selectors that would
// get the same name ("app" and "!app") get a hash of the selector appended.
func (gs *groups) names() []*group {
	slug := func(g *group) string {
		s := strings.Trim(nonName.ReplaceAllString(strings.ToLower(g.key), "-"), "-")
		return gs.prefix + strings.TrimRight(s[:min(len(s), 200)], "-")
	}
	count := map[string]int{}
	for _, g := range gs.list {
		count[slug(g)]++
	}
	for _, g := range gs.list {
		g.name = slug(g)
		if count[g.name] > 1 || len(g.name) >= 200 {
			h := fnv.New32a()
			h.Write([]byte(g.key))
			g.name = fmt.Sprintf("%s-%08x", g.name, h.Sum32())
		}
	}
	return gs.list
}

// renderPeers returns the peers of a rule; Anywhere is a rule without peers.
func renderPeers(ps []Peer) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for _, p := range ps {
		switch {
		case p.anywhere:
			return nil
		case p.CIDR != "":
			out = append(out, networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: p.CIDR, Except: p.Except}})
		default:
			var peer networkingv1.NetworkPolicyPeer
			if p.Pods != "" {
				peer.PodSelector, _ = selector(p.Pods, false)
			}
			if p.Namespaces != "" {
				peer.NamespaceSelector, _ = selector(p.Namespaces, false)
			}
			out = append(out, peer)
		}
	}
	return out
}

// renderPorts returns the ports of a rule; AnyPort is a rule without ports.
func renderPorts(ps []Port) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, p := range ps {
		if p.any {
			return nil
		}
		out = append(out, port(p))
	}
	return out
}

func port(p Port) networkingv1.NetworkPolicyPort {
	proto := p.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	np := networkingv1.NetworkPolicyPort{Protocol: &proto}
	if p.Name != "" {
		np.Port = new(intstr.FromString(p.Name))
		return np
	}
	np.Port = new(intstr.FromInt32(p.Port))
	if p.EndPort != 0 {
		np.EndPort = &p.EndPort
	}
	return np
}
