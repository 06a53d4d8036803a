package vuln_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan"
)

// TestScanCacheAgreesWithFreshScanner scans SBOMs that share packages, and the
// same SBOM again, with one DB, and checks each report against a scanner
// that has seen nothing before.
func TestScanCacheAgreesWithFreshScanner(t *testing.T) {
	root := writeDB(t).RootDir
	shared := open(t, root)
	sboms := []*scan.SBOM{
		fakeSBOM("v0.3.6", true),
		fakeSBOM("v0.3.7", true),  // same libc6, other x/text
		fakeSBOM("v0.3.6", false), // same x/text, no distro
		fakeSBOM("v0.3.8", true),
		fakeSBOM("v0.3.6", true), // all seen before
	}
	for i, sb := range sboms {
		got, err := shared.Scan(context.Background(), sb)
		require.NoError(t, err)
		fresh := open(t, root)
		want, err := fresh.Scan(context.Background(), sb)
		require.NoError(t, err)
		require.NoError(t, fresh.Close())
		assert.Equal(t, want.Findings, got.Findings, "SBOM %d", i)
		assert.Equal(t, want.Target, got.Target)
	}
}
