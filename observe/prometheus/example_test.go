package prometheus_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/shipkit/shipkit/observe/analysis"
	"github.com/shipkit/shipkit/observe/prometheus"
)

// A canary's success rate and p99 latency, judged by the analysis. The server here
// stands in for Prometheus and answers every query with one sample; point New at your
// Prometheus instead.
func ExampleNew() {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.2"]}]}}`)
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
	for _, c := range res.Checks {
		fmt.Println(c.Name, c.Phase)
	}
	// Output:
	// Failed
	// success-rate Failed
	// latency-p99 Successful
}
