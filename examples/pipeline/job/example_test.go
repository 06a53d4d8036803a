package job_test

import (
	"fmt"
	"strings"

	"github.com/shipkit/shipkit/examples/pipeline/job"
)

// The main job's stages on its embedded defaults. A program runs them in order
// (each returns a one-line summary) or calls Run, then Close.
func Example() {
	cfg := job.Defaults()
	cfg.Source = "../../hello" // examples/hello, from this directory
	j, err := job.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer j.Close()
	var names []string
	for _, s := range j.Stages() {
		names = append(names, s.Name)
	}
	fmt.Println(strings.Join(names, " → "))
	fmt.Println("fail on", cfg.FailOn, "for", cfg.Platforms)
	// Output:
	// build → push → sbom → scan → sign → verify → render → gate → deploy
	// fail on Critical for [linux/amd64 linux/arm64]
}
