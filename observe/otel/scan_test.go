package otel_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"

	"github.com/shipkit/shipkit/internal/testbed/vulndb"
	shipotel "github.com/shipkit/shipkit/observe/otel"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
)

// debianImage is a one-layer linux/amd64 image of a Debian 12 root whose dpkg
// database lists libc6 2.36-9+deb12u2, which the fixture database's CVE-2023-4911
// affects.
func debianImage(t *testing.T) v1.Image {
	t.Helper()
	layer, err := crane.Layer(map[string][]byte{
		"etc/os-release": []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n" +
			"VERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n"),
		"var/lib/dpkg/status": []byte("Package: libc6\nStatus: install ok installed\nArchitecture: amd64\n" +
			"Source: glibc\nVersion: 2.36-9+deb12u2\nDescription: GNU C Library: Shared libraries\n\n"),
	})
	require.NoError(t, err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	require.NoError(t, err)
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	img, err = mutate.ConfigFile(img, cf)
	require.NoError(t, err)
	return img
}

// TestScanTrace catalogs a small Debian image with scan/sbom and scans the SBOM
// with scan/vuln (a database written locally from fixtures), both reporting to the
// Observer under a caller's span, then fails a catalog (no image) and a scan (its
// context cancelled): the trace has a scan stage span whose step spans are named
// for what they worked on, carry the counts in their message, and are Error with
// the cause when the step failed; so is the stage.
func TestScanTrace(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // syft's and stereoscope's scratch directories
	ctx := context.Background()
	db, err := vulndb.Write(ctx, t.TempDir(), vulndb.Fixtures())
	require.NoError(t, err)
	img := debianImage(t)
	digest, err := img.Digest()
	require.NoError(t, err)

	tp, rec := newTracing(t)
	ctx, root := tp.Tracer("test").Start(ctx, "release")
	obs := shipotel.New(ctx, tp)
	scanner, err := vuln.Open(ctx, db.RootDir, vuln.WithObserver(obs))
	require.NoError(t, err)
	t.Cleanup(func() { _ = scanner.Close() })
	cataloger := sbom.New(sbom.WithObserver(obs))
	sb, err := cataloger.Catalog(ctx, img)
	require.NoError(t, err)
	report, err := scanner.Scan(ctx, sb)
	require.NoError(t, err)
	require.NotEmpty(t, report.Findings, "libc6 2.36-9+deb12u2 has CVE-2023-4911 in the fixtures")
	_, err = cataloger.Catalog(ctx, nil)
	require.Error(t, err)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = scanner.Scan(cancelled, sb)
	require.ErrorIs(t, err, context.Canceled)
	obs.Close()
	root.End()

	spans := rec.Ended()
	paths := tree(spans)
	scanStep := "scan " + digest.String()
	for _, want := range []string{
		"release > scan [Error]",
		"release > scan > load vulnerability database [Ok]",
		"release > scan > catalog linux/amd64 [Ok]",
		"release > scan > catalog [Error]",
		"release > scan > " + scanStep + " [Ok]",
		"release > scan > " + scanStep + " [Error]",
	} {
		assert.Contains(t, paths, want)
	}
	assert.Len(t, spans, 7, "root, stage and five steps: %v", paths)

	catalog := find(t, spans, "catalog linux/amd64")
	assert.Contains(t, catalog.Attributes(), shipotel.AttrStage.String("scan"))
	assert.Contains(t, catalog.Attributes(), shipotel.AttrStep.String("catalog linux/amd64"))
	assert.Contains(t, catalog.Attributes(), shipotel.AttrMessage.String("1 packages"))
	var ok, failed int
	for _, s := range spans {
		if s.Name() != scanStep {
			continue
		}
		switch s.Status().Code {
		case codes.Ok:
			ok++
			assert.Contains(t, s.Attributes(), shipotel.AttrMessage.String(fmt.Sprintf("%d findings", len(report.Findings))))
		case codes.Error:
			failed++
			assert.Contains(t, s.Status().Description, context.Canceled.Error())
			require.NotEmpty(t, s.Events())
			assert.Equal(t, "exception", s.Events()[0].Name)
		}
	}
	assert.Equal(t, [2]int{1, 1}, [2]int{ok, failed}, "one scan passed, one failed")
	stage := find(t, spans, "scan")
	assert.Equal(t, "2 steps failed, first catalog: catalog: no image", stage.Status().Description)
}
