package admission_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/shipkit/shipkit/deploy/admission"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// Serve the gate as a webhook. Anyone who may create a pod chooses the registries
// its images name, so the gate reads only from an allow-list, AND the verifier
// connects through the same allow-list's transport: the gate checks only the names
// images give, the transport where connections go after redirects and DNS (without
// it an allowed registry can redirect the webhook inside the cluster's network), and
// nothing checks that both are set. Without an allow-list the gate would read any
// HTTPS registry and refuse plain HTTP. A real program listens with TLS
// (http.ListenAndServeTLS) on the address its ValidatingWebhookConfiguration names
// and adds FailOn and WithManifestPolicy to the gate; here one AdmissionReview goes
// through the handler directly.
func ExampleHandler() {
	registries := gate.Registries{
		Hosts:    []string{"registry.example", "*.dkr.ecr.eu-west-1.amazonaws.com"},
		CIDRs:    []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}, // the in-cluster registry's network
		Insecure: []string{"registry.internal:5000"},                    // plain HTTP, and allowed
	}
	rt, err := registries.Transport(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ci, err := cosign.GenerateKeyPair([]byte("pw")) // a real program reads the CI's public key
	if err != nil {
		fmt.Println(err)
		return
	}
	verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{{Name: "ci", PEM: ci.PublicPEM}}},
		cosign.WithTransport(rt))
	if err != nil {
		fmt.Println(err)
		return
	}
	g, err := gate.New(gate.WithVerifier(verifier), gate.WithRegistries(registries))
	if err != nil {
		fmt.Println(err)
		return
	}
	h, err := admission.NewHandler(g, admission.WithMaxInFlight(8))
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("POST /validate", h)

	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
	  "uid":"3c1f7a52","operation":"CREATE","namespace":"shop",
	  "kind":{"group":"","version":"v1","kind":"Pod"},
	  "object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},
	            "spec":{"containers":[
	              {"name":"app","image":"registry.example/shop/web:1.27"},
	              {"name":"miner","image":"169.254.169.254/latest@sha256:` + strings.Repeat("0", 64) + `"}]}}}}`
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(review)))

	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Response.UID, out.Response.Allowed, out.Response.Result.Code)
	for _, line := range strings.Split(out.Response.Result.Message, "; ") {
		fmt.Println(line)
	}
	// Output:
	// 3c1f7a52 false 403
	// denied by the deploy gate (2 reasons): Pod/shop/web: container app: image registry.example/shop/web:1.27: not pinned by digest (tag "1.27"): pin it to the digest the build published
	// Pod/shop/web: container miner: image 169.254.169.254/latest@sha256:0000000000000000000000000000000000000000000000000000000000000000: registry 169.254.169.254 is not in the gate's allow-list of registries: nothing is fetched from it
}
