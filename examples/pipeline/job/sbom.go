package job

import (
	"context"
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
// second pull, no Docker daemon. Each SBOM names its image by the repository it was
// pushed to and its digest.
func (j *Job) sbom(ctx context.Context) (string, error) {
	if err := j.need("image", j.Index != nil); err != nil {
		return "", err
	}
	if j.licenses == nil {
		j.licenses = startLicenseScanner()
	}
	lctx, err := j.licenses.wait(ctx)
	if err != nil {
		return "", fmt.Errorf("license scanner: %w", err)
	}
	ctx = valuesFrom{ctx, lctx}
	opts := []sbom.Option{sbom.WithLogger(j.log), sbom.WithObserver(j.obs)}
	if j.Repo.RepositoryStr() != "" {
		opts = append(opts, sbom.WithSourceName(j.Repo))
	}
	if j.SBOMs, err = sbom.New(opts...).CatalogIndex(ctx, j.Index); err != nil {
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

// startLicenseScanner builds syft's license scanner in the background. syft builds
// one for every image unless the context holds one, and building it (a license
// corpus compiled into matchers) is most of the time of cataloging a small image;
// the job builds it once, while Go compiles, and catalogs every platform with it.
func startLicenseScanner() *background[context.Context] {
	return goBackground(func() (context.Context, error) {
		return syft.SetContextLicenseScanner(context.Background(), syft.DefaultCreateSBOMConfig().Licenses)
	})
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
