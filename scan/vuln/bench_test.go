package vuln_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
)

// benchSBOMs catalogs the test image once and returns it 20 times, as 20 images of
// one pipeline run would reach the scanner.
func benchSBOMs(b *testing.B) []*scan.SBOM {
	b.Helper()
	s, err := sbom.New().Catalog(context.Background(), testimage.Debian(b, "amd64"))
	require.NoError(b, err)
	out := make([]*scan.SBOM, 20)
	for i := range out {
		out[i] = s
	}
	return out
}

// Scan 20 SBOMs with one database load (what a pipeline does with one DB).
func BenchmarkScan20OneLoad(b *testing.B) {
	sboms := benchSBOMs(b)
	root := writeDB(b).RootDir
	b.ResetTimer()
	for b.Loop() {
		s, err := vuln.Open(context.Background(), root)
		require.NoError(b, err)
		for _, sb := range sboms {
			_, err := s.Scan(context.Background(), sb)
			require.NoError(b, err)
		}
		require.NoError(b, s.Close())
	}
}

// Scan 20 SBOMs loading the database for each (what 20 grype runs do).
func BenchmarkScan20LoadEach(b *testing.B) {
	sboms := benchSBOMs(b)
	root := writeDB(b).RootDir
	b.ResetTimer()
	for b.Loop() {
		for _, sb := range sboms {
			s, err := vuln.Open(context.Background(), root)
			require.NoError(b, err)
			_, err = s.Scan(context.Background(), sb)
			require.NoError(b, err)
			require.NoError(b, s.Close())
		}
	}
}

// Scan 20 SBOMs with no package in common (100 each; the match cache cannot help),
// one at a time and on every core: the ratio of the two is what WithConcurrency
// gains.
func BenchmarkScanAll20Distinct(b *testing.B) {
	sboms := distinctSBOMs(20, 100)
	root := writeDB(b).RootDir
	for _, n := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("concurrency=%d", n), func(b *testing.B) {
			for b.Loop() {
				s, err := vuln.Open(context.Background(), root, vuln.WithConcurrency(n))
				require.NoError(b, err)
				_, err = s.ScanAll(context.Background(), sboms)
				require.NoError(b, err)
				require.NoError(b, s.Close())
			}
		})
	}
}
