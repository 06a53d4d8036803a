package vuln_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/anchore/syft/syft/linux"
	syftpkg "github.com/anchore/syft/syft/pkg"
	syftsbom "github.com/anchore/syft/syft/sbom"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
)

// distinctSBOMs returns n SBOMs of a Debian 12 image with debs packages each, no
// package shared between two SBOMs (each image's packages have their own names),
// and libc6 2.36-9+deb12u2 (a finding in the fixtures) in every other one.
func distinctSBOMs(n, debs int) []*scan.SBOM {
	out := make([]*scan.SBOM, n)
	for i := range out {
		c := syftpkg.NewCollection()
		for k := range debs {
			name := fmt.Sprintf("lib%d-%d", i, k)
			p := syftpkg.Package{Name: name, Version: "1.0-1", Type: syftpkg.DebPkg,
				PURL:     fmt.Sprintf("pkg:deb/debian/%s@1.0-1?arch=amd64&distro=debian-12", name),
				Metadata: syftpkg.DpkgDBEntry{Package: name, Version: "1.0-1", Architecture: "amd64"}}
			p.SetID()
			c.Add(p)
		}
		if i%2 == 0 {
			dp := syftpkg.Package{Name: "libc6", Version: "2.36-9+deb12u2", Type: syftpkg.DebPkg,
				PURL:     "pkg:deb/debian/libc6@2.36-9+deb12u2?arch=amd64&upstream=glibc&distro=debian-12",
				Metadata: syftpkg.DpkgDBEntry{Package: "libc6", Source: "glibc", Version: "2.36-9+deb12u2", Architecture: "amd64"}}
			dp.SetID()
			c.Add(dp)
		}
		rel := &linux.Release{ID: "debian", VersionID: "12", VersionCodename: "bookworm", Name: "Debian GNU/Linux"}
		s := syftsbom.SBOM{Artifacts: syftsbom.Artifacts{Packages: c, LinuxDistribution: rel}}
		h, _ := v1.NewHash(fmt.Sprintf("sha256:%064x", i+1))
		out[i] = scan.NewSBOM(h, &v1.Platform{OS: "linux", Architecture: "amd64"}, s)
	}
	return out
}

// TestScanAll: ScanAll one at a time and four at a time gives, in order, the
// reports Scan gives for each SBOM.
func TestScanAll(t *testing.T) {
	root := writeDB(t).RootDir
	ctx := context.Background()
	sbs := append(distinctSBOMs(6, 20), fakeSBOM("v0.3.6", true), fakeSBOM("v0.3.7", false))
	ref := open(t, root, vuln.WithConcurrency(1))
	var want []*scan.Report
	for _, sb := range sbs {
		r, err := ref.Scan(ctx, sb)
		require.NoError(t, err)
		want = append(want, r)
	}
	require.NotEmpty(t, want[0].Findings)
	require.NotEmpty(t, want[6].Findings)
	for _, n := range []int{1, 4} {
		got, err := open(t, root, vuln.WithConcurrency(n)).ScanAll(ctx, sbs)
		require.NoError(t, err, "concurrency %d", n)
		require.Len(t, got, len(sbs))
		for i := range got {
			assert.Equal(t, want[i].Target, got[i].Target, "concurrency %d, SBOM %d", n, i)
			assert.Equal(t, want[i].Subject, got[i].Subject)
			assert.Equal(t, want[i].Findings, got[i].Findings, "concurrency %d, SBOM %d", n, i)
		}
	}
}

func TestScanAllErrors(t *testing.T) {
	root := writeDB(t).RootDir
	for _, n := range []int{0, -2} {
		_, err := vuln.Open(context.Background(), root, vuln.WithConcurrency(n))
		require.ErrorIs(t, err, vuln.ErrInvalidOption)
		assert.ErrorContains(t, err, fmt.Sprintf("WithConcurrency(%d)", n))
	}
	s := open(t, root, vuln.WithConcurrency(2))
	_, err := s.ScanAll(context.Background(), []*scan.SBOM{fakeSBOM("v0.3.6", false), nil})
	require.ErrorContains(t, err, "SBOM 1: no SBOM")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.ScanAll(ctx, distinctSBOMs(3, 2))
	require.ErrorIs(t, err, context.Canceled)
	got, err := s.ScanAll(context.Background(), nil)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestInvalidOptionIsTheSharedSentinel(t *testing.T) {
	_, err := vuln.Open(context.Background(), t.TempDir(), vuln.WithConcurrency(0))
	require.ErrorIs(t, err, sbom.ErrInvalidOption, "one sentinel for every stage")
}
