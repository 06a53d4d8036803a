package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/shipkit/shipkit/observe/web"
)

// A backend that answers a query parameter with JSON; the path picks the number.
func ExampleNew() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"query": %q, "result": {"series": [{"value": 0.997}]}}`, r.URL.Query().Get("q"))
	}))
	defer backend.Close()

	p, err := web.New(backend.URL+"/api/query?q={{urlquery .Query}}", "$.result.series[0].value")
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := p.Query(context.Background(), "success_rate{service:checkout,version:v2}")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(v)
	// Output:
	// 0.997
}
