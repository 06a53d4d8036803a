package vuln_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vulndb"
)

// alpineOSV holds Alpine secdb-style advisories, by source package: one that
// affects the image's openssl (libcrypto3 3.1.1-r1), one whose fix the image's
// busybox already has, and one for another Alpine release.
const alpineOSV = `[
{"id":"CVE-2023-3446","summary":"openssl: excessive time spent checking DH keys",
 "affected":[{"package":{"ecosystem":"Alpine:v3.18","name":"openssl"},
  "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.1.1-r3"}]}]}]},
{"id":"CVE-2022-48174","summary":"busybox: stack overflow in ash",
 "affected":[{"package":{"ecosystem":"Alpine:v3.18","name":"busybox"},
  "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.36.1-r1"}]}]}]},
{"id":"CVE-2099-0001","summary":"busybox on Alpine 3.17 only",
 "affected":[{"package":{"ecosystem":"Alpine:v3.17","name":"busybox"},
  "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"9.9.9-r0"}]}]}]}
]`

// An Alpine image's apk packages are matched by their origin package, on the
// image's own Alpine release.
func TestScanAlpine(t *testing.T) {
	ctx := context.Background()
	recs, err := vulndb.FromOSV(strings.NewReader(alpineOSV))
	require.NoError(t, err)
	db, err := vulndb.Write(ctx, t.TempDir(), recs)
	require.NoError(t, err)

	sb, err := sbom.New().Catalog(ctx, testimage.Alpine(t, "amd64"))
	require.NoError(t, err)
	r, err := open(t, db.RootDir).Scan(ctx, sb)
	require.NoError(t, err)

	require.Equal(t, []string{"CVE-2023-3446"}, ids(r), "%+v", r.Findings)
	f := r.Findings[0]
	assert.Equal(t, "libcrypto3", f.Package)
	assert.Equal(t, "3.1.1-r1", f.Version)
	assert.Equal(t, "apk", f.Type)
	assert.Equal(t, []string{"3.1.1-r3"}, f.FixedIn)
	assert.Equal(t, []string{"/lib/apk/db/installed"}, f.Locations)
}
