package analysis_test

import (
	"context"
	"fmt"
	"time"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
)

// A canary's success rate measured three times; the second measurement fails, which
// the failure limit of 1 tolerates.
func ExampleRun() {
	answers := []float64{0.998, 0.95, 0.997}
	var provider observe.Provider = observe.ProviderFunc(func(context.Context, string) (float64, error) {
		v := answers[0]
		answers = answers[1:]
		return v, nil
	})
	check := analysis.SuccessRate(provider, `version="v2"`, 0.99)
	check.Count, check.Interval, check.FailureLimit = 3, 10*time.Millisecond, 1
	check.Timeout = time.Second // by default a query may take at most the interval

	res, err := analysis.Run(context.Background(), []analysis.Check{check})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range res.Measurements {
		fmt.Println(m.Check, m.Value, m.Phase)
	}
	fmt.Println(res.Phase)
	// Output:
	// success-rate 0.998 Successful
	// success-rate 0.95 Failed
	// success-rate 0.997 Successful
	// Successful
}

func ExampleSuccessRate() {
	check := analysis.SuccessRate(nil, analysis.MatchLabels(map[string]string{"app": "web", "version": "v2"}), 0.99,
		analysis.Window(30*time.Second))
	fmt.Println(check.Query)
	fmt.Println(check.Success)
	// Output:
	// 1 - (sum(rate(http_requests_total{app="web",version="v2",code=~"5.."}[30s])) or vector(0)) / sum(rate(http_requests_total{app="web",version="v2"}[30s]))
	// result >= 0.99
}

func ExampleLatencyP99() {
	check := analysis.LatencyP99(nil, `version="v2"`, 250*time.Millisecond)
	fmt.Println(check.Query)
	fmt.Println(check.Success)
	// Output:
	// histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{version="v2"}[1m])))
	// result <= 0.25
}
