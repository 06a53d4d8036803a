package netpol_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/mesh/netpol"
)

var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.Stop()
	os.Exit(code)
}

// shop is the intent of the package documentation.
func shop(ns string) netpol.Policy {
	return netpol.Policy{
		Namespace:  ns,
		DenyEgress: true,
		AllowDNS:   true,
		Ingress: []netpol.Ingress{
			{To: "app=web-front-end", From: []netpol.Peer{netpol.Anywhere}, Ports: []netpol.Port{netpol.TCP(443)}},
			{To: "app=api", From: []netpol.Peer{netpol.Pods("app=web-front-end")}, Ports: []netpol.Port{netpol.TCP(8080)}},
			{To: "app=api", From: []netpol.Peer{netpol.PodsIn(netpol.Namespace("monitoring"), "app=prometheus")}, Ports: []netpol.Port{netpol.Named("metrics")}},
		},
		Egress: []netpol.Egress{
			{From: "app=api", To: []netpol.Peer{netpol.CIDR("10.20.0.0/16", "10.20.99.0/24")}, Ports: []netpol.Port{{Port: 5432, EndPort: 5433}}},
		},
		Labels: map[string]string{"app.kubernetes.io/managed-by": "shipkit"},
	}
}

func labels(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func tcp(port int32) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(port))}
}

func types(t ...networkingv1.PolicyType) []networkingv1.PolicyType { return t }

func TestNetworkPolicies(t *testing.T) {
	nps, err := shop("shop").NetworkPolicies()
	require.NoError(t, err)
	byName := map[string]networkingv1.NetworkPolicySpec{}
	var names []string
	for _, np := range nps {
		assert.Equal(t, "shop", np.Namespace)
		assert.Equal(t, "NetworkPolicy", np.Kind)
		assert.Equal(t, "networking.k8s.io/v1", np.APIVersion)
		assert.Equal(t, "shipkit", np.Labels["app.kubernetes.io/managed-by"])
		names = append(names, np.Name)
		byName[np.Name] = np.Spec
	}
	require.Equal(t, []string{"default-deny", "allow-dns", "ingress-app-web-front-end", "ingress-app-api", "egress-app-api", "egress-app-web-front-end"}, names)

	assert.Equal(t, networkingv1.NetworkPolicySpec{PolicyTypes: types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)}, byName["default-deny"])
	assert.Equal(t, networkingv1.NetworkPolicySpec{
		PolicyTypes: types(networkingv1.PolicyTypeEgress),
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: labels("kubernetes.io/metadata.name", "kube-system"), PodSelector: labels("k8s-app", "kube-dns")}},
			Ports: []networkingv1.NetworkPolicyPort{
				{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))}, tcp(53),
			},
		}},
	}, byName["allow-dns"])
	// From anywhere: a rule without peers.
	assert.Equal(t, networkingv1.NetworkPolicySpec{
		PodSelector: *labels("app", "web-front-end"),
		PolicyTypes: types(networkingv1.PolicyTypeIngress),
		Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{tcp(443)}}},
	}, byName["ingress-app-web-front-end"])
	// Two rules for app=api share one policy.
	assert.Equal(t, networkingv1.NetworkPolicySpec{
		PodSelector: *labels("app", "api"),
		PolicyTypes: types(networkingv1.PolicyTypeIngress),
		Ingress: []networkingv1.NetworkPolicyIngressRule{
			{From: []networkingv1.NetworkPolicyPeer{{PodSelector: labels("app", "web-front-end")}}, Ports: []networkingv1.NetworkPolicyPort{tcp(8080)}},
			{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: labels("kubernetes.io/metadata.name", "monitoring"), PodSelector: labels("app", "prometheus")}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString("metrics"))}},
			},
		},
	}, byName["ingress-app-api"])
	assert.Equal(t, networkingv1.NetworkPolicySpec{
		PodSelector: *labels("app", "api"),
		PolicyTypes: types(networkingv1.PolicyTypeEgress),
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.20.0.0/16", Except: []string{"10.20.99.0/24"}}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(5432)), EndPort: ptr.To[int32](5433)}},
		}},
	}, byName["egress-app-api"])
	// With egress denied, web-front-end may still reach the api it is allowed into;
	// prometheus lives in another namespace, whose policies are not ours.
	assert.Equal(t, networkingv1.NetworkPolicySpec{
		PodSelector: *labels("app", "web-front-end"),
		PolicyTypes: types(networkingv1.PolicyTypeEgress),
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To:    []networkingv1.NetworkPolicyPeer{{PodSelector: labels("app", "api")}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(8080)},
		}},
	}, byName["egress-app-web-front-end"])
}

func TestNetworkPoliciesWithoutEgressDenial(t *testing.T) {
	nps, err := netpol.Policy{Namespace: "shop", Ingress: []netpol.Ingress{
		{To: "app=api", From: []netpol.Peer{netpol.Pods("app=web")}, Ports: []netpol.Port{netpol.AnyPort}},
	}}.NetworkPolicies()
	require.NoError(t, err)
	require.Len(t, nps, 2, "no egress policies when egress is not denied")
	assert.Equal(t, types(networkingv1.PolicyTypeIngress), nps[0].Spec.PolicyTypes)
	assert.Equal(t, []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: labels("app", "web")}}}}, nps[1].Spec.Ingress,
		"AnyPort is a rule without ports")
}

func TestNames(t *testing.T) {
	nps, err := netpol.Policy{Namespace: "shop", Ingress: []netpol.Ingress{
		{To: "tier=web,app=shop", From: []netpol.Peer{netpol.Anywhere}, Ports: []netpol.Port{netpol.TCP(80)}},
		{To: "app=shop, tier=web", From: []netpol.Peer{netpol.Anywhere}, Ports: []netpol.Port{netpol.TCP(443)}},
		{To: "canary", From: []netpol.Peer{netpol.Anywhere}, Ports: []netpol.Port{netpol.TCP(80)}},
		{To: "!canary", From: []netpol.Peer{netpol.Anywhere}, Ports: []netpol.Port{netpol.TCP(80)}},
		{To: "tier in (web, api)", From: []netpol.Peer{netpol.Anywhere}, Ports: []netpol.Port{netpol.TCP(80)}},
	}}.NetworkPolicies()
	require.NoError(t, err)
	require.Len(t, nps, 5)
	assert.Equal(t, "ingress-app-shop-tier-web", nps[1].Name)
	assert.Len(t, nps[1].Spec.Ingress, 2, "one selector written two ways is one policy")
	assert.Regexp(t, `^ingress-canary-[0-9a-f]{8}$`, nps[2].Name)
	assert.Regexp(t, `^ingress-canary-[0-9a-f]{8}$`, nps[3].Name)
	assert.NotEqual(t, nps[2].Name, nps[3].Name)
	assert.Equal(t, "ingress-tier-in-api-web", nps[4].Name)
	assert.Equal(t, []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"api", "web"}}},
		nps[4].Spec.PodSelector.MatchExpressions)
}

func TestValidate(t *testing.T) {
	anyone := []netpol.Peer{netpol.Anywhere}
	p443 := []netpol.Port{netpol.TCP(443)}
	for _, tc := range []struct {
		name   string
		policy netpol.Policy
		want   []string
	}{
		{"no namespace", netpol.Policy{}, []string{"namespace: empty"}},
		{"bad namespace", netpol.Policy{Namespace: "Shop"}, []string{`namespace: "Shop"`}},
		{"dns without egress denial", netpol.Policy{Namespace: "a", AllowDNS: true}, []string{"allowDNS: needs denyEgress"}},
		{"empty to", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{{From: anyone, Ports: p443}}}, []string{"ingress[0].to: empty selector"}},
		{"bad selector syntax", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{{To: "app=a b", From: anyone, Ports: p443}}}, []string{`ingress[0].to: selector "app=a b": found 'b'`}},
		{"bad label key", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{{To: "-app=x", From: anyone, Ports: p443}}}, []string{`ingress[0].to: selector "-app=x"`, `Invalid value: "-app"`}},
		{"empty label value", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{{To: "app==", From: anyone, Ports: p443}}}, []string{`ingress[0].to: selector "app==": label app has an empty value`}},
		{"no peers", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{{To: "app=x", Ports: p443}}}, []string{"ingress[0].from: empty: say who may connect"}},
		{"empty peer", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{{To: "app=x", From: []netpol.Peer{{}}, Ports: p443}}}, []string{"ingress[0].from: [0]: empty peer"}},
		{"anywhere and more", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{{To: "app=x", From: []netpol.Peer{netpol.Pods("app=y"), netpol.Anywhere}, Ports: p443}}}, []string{"ingress[0].from: [1]: netpol.Anywhere together with other peers"}},
		{"port 0", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{{To: "app=x", From: anyone, Ports: []netpol.Port{netpol.TCP(0)}}}}, []string{"ingress[0].ports: [0]: port 0 is outside 1-65535"}},
		{"no ports", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{{To: "app=x", From: anyone}}}, []string{"ingress[0].ports: empty: list the ports"}},
		{"bad range", netpol.Policy{Namespace: "a", Egress: []netpol.Egress{{From: "app=x", To: anyone, Ports: []netpol.Port{{Port: 90, EndPort: 80}}}}}, []string{"egress[0].ports: [0]: port range 90-80"}},
		{"bad protocol", netpol.Policy{Namespace: "a", Egress: []netpol.Egress{{From: "app=x", To: anyone, Ports: []netpol.Port{{Port: 80, Protocol: "ICMP"}}}}}, []string{`egress[0].ports: [0]: protocol "ICMP"`}},
		{"bad port name", netpol.Policy{Namespace: "a", Egress: []netpol.Egress{{From: "app=x", To: anyone, Ports: []netpol.Port{netpol.Named("HTTP_PORT")}}}}, []string{`egress[0].ports: [0]: port name "HTTP_PORT"`}},
		{"host address as CIDR", netpol.Policy{Namespace: "a", Egress: []netpol.Egress{{From: "app=x", To: []netpol.Peer{netpol.CIDR("10.1.2.3/8")}, Ports: p443}}}, []string{"egress[0].to: [0]: CIDR 10.1.2.3/8 is not a network address (did you mean 10.0.0.0/8?)"}},
		{"except outside", netpol.Policy{Namespace: "a", Egress: []netpol.Egress{{From: "app=x", To: []netpol.Peer{netpol.CIDR("10.0.0.0/8", "192.168.0.0/16")}, Ports: p443}}}, []string{"egress[0].to: [0]: except 192.168.0.0/16 is not a network strictly inside 10.0.0.0/8"}},
		{"empty namespaces selector", netpol.Policy{Namespace: "a", Egress: []netpol.Egress{{From: "app=x", To: []netpol.Peer{netpol.PodsIn("", "")}, Ports: p443}}}, []string{"egress[0].to: [0]: empty peer"}},
		{"every problem at once", netpol.Policy{Namespace: "a", Ingress: []netpol.Ingress{
			{To: "app=x", From: anyone, Ports: []netpol.Port{netpol.TCP(0)}},
			{To: "", From: nil, Ports: p443},
		}}, []string{"ingress[0].ports: [0]: port 0", "ingress[1].to: empty selector", "ingress[1].from: empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				assert.ErrorContains(t, err, w)
			}
			nps, err := tc.policy.NetworkPolicies()
			assert.Error(t, err)
			assert.Nil(t, nps)
		})
	}
}

// The rendered policies are accepted by a real API server (which validates
// NetworkPolicies itself) and read back unchanged.
func TestApply(t *testing.T) {
	c := cluster.Get(t)
	ns := c.NewNamespace(t)
	objs, err := shop(ns).Objects()
	require.NoError(t, err)
	want, err := shop(ns).NetworkPolicies()
	require.NoError(t, err)
	require.Len(t, objs, len(want))
	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	client := c.Clientset().NetworkingV1().NetworkPolicies(ns)
	for i, o := range objs {
		// Applied as deploy/apply does: the unstructured objects, server-side.
		_, err := dyn.Resource(networkingv1.SchemeGroupVersion.WithResource("networkpolicies")).Namespace(ns).
			Apply(t.Context(), o.GetName(), o, metav1.ApplyOptions{FieldManager: "deploy"})
		require.NoError(t, err, "apply %s", o.GetName())

		got, err := client.Get(t.Context(), o.GetName(), metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, want[i].Spec, got.Spec, "%s reads back as rendered", o.GetName())
		assert.Equal(t, want[i].Labels, got.Labels)
	}
	list, err := client.List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	assert.Len(t, list.Items, len(want))
}
