package mtls_test

import (
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/mesh/mtls"
)

// Require mutual TLS for the api workload and make clients of the api Service use it.
func ExamplePolicy_Objects() {
	objs, err := mtls.Policy{Namespace: "shop", Workload: "app=api", Hosts: []string{"api"}}.Objects()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range objs {
		b, _ := yaml.Marshal(o.Object)
		fmt.Printf("---\n%s", b)
	}
	// Output:
	// ---
	// apiVersion: security.istio.io/v1
	// kind: PeerAuthentication
	// metadata:
	//   name: mtls-app-api
	//   namespace: shop
	// spec:
	//   mtls:
	//     mode: STRICT
	//   selector:
	//     matchLabels:
	//       app: api
	// ---
	// apiVersion: networking.istio.io/v1
	// kind: DestinationRule
	// metadata:
	//   name: api
	//   namespace: shop
	// spec:
	//   host: api
	//   trafficPolicy:
	//     tls:
	//       mode: ISTIO_MUTUAL
}

// Bad input is reported field by field, all at once.
func ExamplePolicy_Validate() {
	err := mtls.Policy{Namespace: "shop", Workload: "app in (api)", Mode: "OFF"}.Validate()
	fmt.Println(err)
	// Output:
	// mtls: workload "app in (api)": "app in (api)" is not key=value (Istio selects workloads by exact labels)
	// mode "OFF": want STRICT or PERMISSIVE
}
