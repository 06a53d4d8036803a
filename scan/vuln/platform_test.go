package vuln_test

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vulndb"
)

// goVulnRecords reads real golang/vulndb records from scan/vulndb's testdata.
func goVulnRecords(t *testing.T, ids ...string) []vulndb.Record {
	t.Helper()
	var out []vulndb.Record
	for _, id := range ids {
		data, err := os.ReadFile("../vulndb/testdata/golang-vulndb/" + id + ".json")
		require.NoError(t, err)
		rs, err := vulndb.ParseOSV(data)
		require.NoError(t, err)
		out = append(out, rs...)
	}
	return out
}

// The platform a Go binary was built for decides at module level: an advisory
// whose imports are all limited to other operating systems or architectures is
// not reported, one limited to the binary's own platform is.
func TestGoPlatformLimits(t *testing.T) {
	ctx := context.Background()
	sb, err := sbom.New().Catalog(ctx, testimage.Debian(t, "amd64")) // linux/amd64 binary, x/text v0.3.6
	require.NoError(t, err)

	goIDs := func(recs []vulndb.Record) []string {
		db, err := vulndb.Write(ctx, t.TempDir(), recs)
		require.NoError(t, err)
		r, err := open(t, db.RootDir).Scan(ctx, sb)
		require.NoError(t, err)
		return ids(r)
	}

	// As golang/vulndb writes them: both apply everywhere.
	recs := goVulnRecords(t, "GO-2021-0113", "GO-2022-1059")
	assert.Equal(t, []string{"GO-2021-0113", "GO-2022-1059"}, goIDs(recs))

	// The same records, GO-2022-1059 limited to windows (as GO-2024-2961 is) and
	// GO-2021-0113 to amd64 (as GO-2022-0209 is).
	recs = goVulnRecords(t, "GO-2021-0113", "GO-2022-1059")
	for i := range recs {
		require.Len(t, recs[i].Imports, 1)
		switch recs[i].ID {
		case "GO-2022-1059":
			recs[i].Imports[0].GOOS = []string{"windows"}
		case "GO-2021-0113":
			recs[i].Imports[0].GOARCH = []string{"amd64"}
		}
	}
	assert.Equal(t, []string{"GO-2021-0113"}, goIDs(recs))

	// Limited to ppc64le (as GO-2025-3447 is): not on amd64.
	recs[0].Imports[0].GOARCH = []string{"ppc64le"}
	recs[1].Imports[0].GOARCH = []string{"ppc64le"}
	assert.Empty(t, goIDs(recs))
}
