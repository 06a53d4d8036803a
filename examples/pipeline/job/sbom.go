package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/anchore/syft/syft"

	"github.com/shipkit/shipkit/scan/sbom"
)

// sbom catalogs every platform image of the index from the value in memory: no
// second pull, no Docker daemon.
func (j *Job) sbom(ctx context.Context) (string, error) {
	if err := j.need("image", j.Index != nil); err != nil {
		return "", err
	}
	lctx, err := j.licenses.wait(ctx)
	if err != nil {
		return "", fmt.Errorf("license scanner: %w", err)
	}
	ctx = valuesFrom{ctx, lctx}
	if err := j.step("sbom", "catalog "+strings.Join(j.cfg.Platforms, ", "), func() error {
		j.SBOMs, err = sbom.New(sbom.WithLogger(j.log)).CatalogIndex(ctx, j.Index)
		return err
	}); err != nil {
		return "", err
	}
	total := 0
	for _, s := range j.SBOMs {
		for _, n := range sbom.Summary(s) {
			total += n
		}
	}
	return fmt.Sprintf("%d SBOMs, %d packages", len(j.SBOMs), total), nil
}

// licenseScanner is syft's license scanner, built in the background. syft builds
// one for every image unless the context holds one, and building it is most of the
// time of cataloging a small image; the job builds it once, while the build stage
// runs, and catalogs every platform with it.
type licenseScanner struct {
	done chan struct{}
	ctx  context.Context // holds the scanner
	err  error
}

func startLicenseScanner() *licenseScanner {
	l := &licenseScanner{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.ctx, l.err = syft.SetContextLicenseScanner(context.Background(), syft.DefaultCreateSBOMConfig().Licenses)
	}()
	return l
}

// wait returns a context holding the scanner once it is built.
func (l *licenseScanner) wait(ctx context.Context) (context.Context, error) {
	if l == nil {
		return nil, errors.New("not started")
	}
	select {
	case <-l.done:
		return l.ctx, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// valuesFrom is ctx with the values of another context added: its deadline and
// cancellation are ctx's alone.
type valuesFrom struct {
	context.Context
	values context.Context
}

func (v valuesFrom) Value(key any) any {
	if x := v.Context.Value(key); x != nil {
		return x
	}
	return v.values.Value(key)
}

// WriteSBOMSummary writes the packages of each platform's SBOM by type, one platform
// a column.
func (j *Job) WriteSBOMSummary(w io.Writer) error {
	types := map[string]bool{}
	counts := make([]map[string]int, len(j.SBOMs))
	for i, s := range j.SBOMs {
		counts[i] = sbom.Summary(s)
		for t := range counts[i] {
			types[t] = true
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "TYPE")
	for _, s := range j.SBOMs {
		p := "?"
		if s.Platform != nil {
			p = s.Platform.String()
		}
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(p))
	}
	fmt.Fprintln(tw)
	for _, t := range slices.Sorted(maps.Keys(types)) {
		fmt.Fprint(tw, t)
		for i := range j.SBOMs {
			fmt.Fprintf(tw, "\t%d", counts[i][t])
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
