package netpol_test

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/mesh/netpol"
)

// The intent of the package documentation: default-deny, DNS allowed, the front end
// open on 443 and the api reachable from the front end only.
func ExamplePolicy_NetworkPolicies() {
	nps, err := netpol.Policy{
		Namespace:  "shop",
		DenyEgress: true,
		AllowDNS:   true,
		Ingress: []netpol.Ingress{
			{To: "app=web-front-end", From: []netpol.Peer{netpol.Anywhere}, Ports: []netpol.Port{netpol.TCP(443)}},
			{To: "app=api", From: []netpol.Peer{netpol.Pods("app=web-front-end")}, Ports: []netpol.Port{netpol.TCP(8080)}},
		},
	}.NetworkPolicies()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, np := range nps {
		fmt.Printf("%-25s pods %-18s types %v, rules: %d ingress, %d egress\n", np.Name,
			metav1.FormatLabelSelector(&np.Spec.PodSelector), np.Spec.PolicyTypes, len(np.Spec.Ingress), len(np.Spec.Egress))
	}
	// Output:
	// default-deny              pods <none>             types [Ingress Egress], rules: 0 ingress, 0 egress
	// allow-dns                 pods <none>             types [Egress], rules: 0 ingress, 1 egress
	// ingress-app-web-front-end pods app=web-front-end  types [Ingress], rules: 1 ingress, 0 egress
	// ingress-app-api           pods app=api            types [Ingress], rules: 1 ingress, 0 egress
	// egress-app-web-front-end  pods app=web-front-end  types [Egress], rules: 0 ingress, 1 egress
}

// Validate names every problem with its field.
func ExamplePolicy_Validate() {
	err := netpol.Policy{
		Namespace: "shop",
		Ingress: []netpol.Ingress{
			{To: "app=api", Ports: []netpol.Port{netpol.TCP(0)}},
			{To: "app in (web", From: []netpol.Peer{netpol.Anywhere}, Ports: []netpol.Port{netpol.TCP(80)}},
		},
	}.Validate()
	fmt.Println(err)
	// Output:
	// netpol: ingress[0].from: empty: say who may connect (netpol.Anywhere for any peer)
	// ingress[0].ports: [0]: port 0 is outside 1-65535
	// ingress[1].to: selector "app in (web": unable to parse requirement: found '', expected: ',' or ')'
}
