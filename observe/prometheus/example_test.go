package prometheus_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/observe/prometheus"
)

// A canary's success rate and p99 latency, judged by the analysis. The server here
// stands in for Prometheus and answers a latency query with 0.2 s and any other with
// 0.995; point New at your Prometheus instead.
func ExampleNew() {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		value := "0.995"
		if strings.HasPrefix(r.FormValue("query"), "histogram_quantile") {
			value = "0.2"
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,%q]}]}}`, value)
	}))
	defer fake.Close()

	p, err := prometheus.New(fake.URL, prometheus.WithTimeout(5*time.Second), prometheus.WithBearerToken("token"))
	if err != nil {
		fmt.Println(err)
		return
	}
	canary := analysis.MatchLabels(map[string]string{"app": "checkout", "version": "v2"})
	res, err := analysis.Run(context.Background(), []analysis.Check{
		analysis.SuccessRate(p, canary, 0.99),
		analysis.LatencyP99(p, canary, 500*time.Millisecond),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Phase)
	for _, m := range res.Checks {
		fmt.Println(m.Name, m.Phase)
	}
	// Output:
	// Successful
	// success-rate Successful
	// latency-p99 Successful
}
