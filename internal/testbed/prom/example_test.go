package prom_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/shipkit/shipkit/internal/testbed/prom"
)

func ExampleNewApp() {
	app, err := prom.NewApp()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer app.Close()
	app.Succeed("v2", 9, 10*time.Millisecond)
	app.Fail("v2", 1, 10*time.Millisecond)

	resp, err := http.Get("http://" + app.Addr + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "http_requests_total") {
			fmt.Println(sc.Text())
		}
	}
	// Output:
	// http_requests_total{code="200",version="v2"} 9
	// http_requests_total{code="500",version="v2"} 1
}
