package admission_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"

	"github.com/shipkit/shipkit/deploy/admission"
	"github.com/shipkit/shipkit/deploy/gate"
)

// Serve the gate as a webhook. A real program listens with TLS
// (http.ListenAndServeTLS) on the address its ValidatingWebhookConfiguration names;
// here one AdmissionReview goes through the handler directly.
func ExampleHandler() {
	g, err := gate.New() // add WithVerifier, FailOn and WithManifestPolicy in a real gate
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("POST /validate", admission.NewHandler(g))

	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
	  "uid":"3c1f7a52","operation":"CREATE","namespace":"shop",
	  "kind":{"group":"","version":"v1","kind":"Pod"},
	  "object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},
	            "spec":{"containers":[{"name":"app","image":"nginx:1.27"}]}}}}`
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(review)))

	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.Response.UID, out.Response.Allowed, out.Response.Result.Code)
	fmt.Println(out.Response.Result.Message)
	// Output:
	// 3c1f7a52 false 403
	// denied by the deploy gate: Pod/shop/web: container app: image nginx:1.27: not pinned by digest (tag "1.27"): pin it to the digest the build published
}
