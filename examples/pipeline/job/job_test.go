package job

import (
	"bytes"
	"context"
	"encoding/json"
	"path"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/package-url/packageurl-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/sign"
)

func testConfig() Config {
	cfg := Defaults()
	cfg.Source = "../../hello"
	return cfg
}

// TestRun runs every stage on one platform and checks what each left in the Job.
func TestRun(t *testing.T) {
	cfg := testConfig()
	cfg.Platforms = []string{"linux/arm64"}
	j, err := New(cfg)
	require.NoError(t, err)
	defer j.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	require.NoError(t, j.Run(ctx))

	im, err := j.Index.IndexManifest()
	require.NoError(t, err)
	require.Len(t, im.Manifests, 1)
	assert.Equal(t, "linux/arm64", im.Manifests[0].Platform.String())
	h, err := j.Index.Digest()
	require.NoError(t, err)
	assert.Equal(t, h.String(), j.Digest.DigestStr())

	require.Len(t, j.SBOMs, 1)
	assert.Equal(t, im.Manifests[0].Digest, j.SBOMs[0].Subject, "the SBOM is of the platform image")
	var cdx bytes.Buffer
	require.NoError(t, sbom.Encode(&cdx, j.SBOMs[0], sbom.CycloneDXJSON))
	var bom struct {
		Metadata struct{ Component struct{ PURL string } }
	}
	require.NoError(t, json.Unmarshal(cdx.Bytes(), &bom))
	purl, err := packageurl.FromString(bom.Metadata.Component.PURL)
	require.NoError(t, err, "the SBOM names the image by the repository it was pushed to")
	assert.Equal(t, path.Base(j.Repo.RepositoryStr())+"@"+im.Manifests[0].Digest.String(), purl.Name+"@"+purl.Version)
	assert.Equal(t, j.Repo.Name(), purl.Qualifiers.Map()["repository_url"])
	require.Len(t, j.Reports, 1)
	assert.Equal(t, j.Digest.String(), j.Report.Target)
	require.Len(t, j.Report.Findings, 1)
	assert.Equal(t, "GHSA-69ch-w2m2-3vjp", j.Report.Findings[0].ID)
	assert.Equal(t, report.High, j.Report.Findings[0].Severity)

	assert.Equal(t, []string{sign.PredicateSPDX, sign.PredicateVuln, sign.PredicateSLSAProvenance}, j.Attested)
	require.NotNil(t, j.Verified)
	assert.Equal(t, []string{"pipeline"}, j.Verified.Signers)
	assert.Len(t, j.Verified.Attestations, 1, "provenance, about the index")
	require.Len(t, j.Verified.Platforms, 1)
	assert.Len(t, j.Verified.Platforms[0].Attestations, 2, "the platform's SBOM and report, about its image")

	require.NotNil(t, j.Decision)
	assert.True(t, j.Decision.Allowed(), j.Decision.String())
	assert.Equal(t, 3, j.Changes.Count(deploy.Created))
}

func TestNewRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		change func(*Config)
		want   string
	}{
		"no source":          {func(c *Config) { c.Source = "" }, "no source"},
		"missing source":     {func(c *Config) { c.Source = "/nonexistent" }, "source"},
		"no platforms":       {func(c *Config) { c.Platforms = nil }, "no platforms"},
		"no repository":      {func(c *Config) { c.SourceRepository = "" }, "source repository"},
		"canary, no cluster": {func(c *Config) { c.Prometheus = "http://127.0.0.1:9090" }, "needs a cluster"},
		"missing DB":         {func(c *Config) { c.DB = "/nonexistent/db" }, "/nonexistent/db"},
		"missing key":        {func(c *Config) { c.KeyFile = "/nonexistent/cosign.key" }, "/nonexistent/cosign.key"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			tc.change(&cfg)
			_, err := New(cfg)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// TestStagesInOrder: a stage run before the one it needs says so instead of failing
// obscurely.
func TestStagesInOrder(t *testing.T) {
	j, err := New(testConfig())
	require.NoError(t, err)
	defer j.Close()
	for _, s := range j.Stages()[1:] {
		_, err := s.Run(context.Background())
		assert.ErrorContains(t, err, "run the stages in order", s.Name)
	}
}

func TestRenderEmbeddedOverlay(t *testing.T) {
	for tname, ns := range map[string]string{"default namespace": "", "namespace set": "team-a"} {
		t.Run(tname, func(t *testing.T) {
			cfg := testConfig()
			cfg.Namespace = ns
			j, err := New(cfg)
			require.NoError(t, err)
			j.Repo = name.MustParseReference("registry.example/team/hello").Context()
			j.Digest = j.Repo.Digest("sha256:" + "ab12000000000000000000000000000000000000000000000000000000000000")
			_, err = j.render(context.Background())
			require.NoError(t, err)
			want := ns
			if want == "" {
				want = "hello"
			}
			var refs []string
			for _, o := range j.Objects {
				refs = append(refs, deploy.RefOf(o).String())
			}
			assert.Equal(t, []string{"Namespace/" + want, "Deployment/" + want + "/hello", "Service/" + want + "/hello"}, refs)
			for _, o := range j.Objects {
				if o.GetKind() != "Deployment" {
					continue
				}
				containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
				require.Len(t, containers, 1)
				assert.Equal(t, j.Digest.String(), containers[0].(map[string]any)["image"])
				assert.Equal(t, "ab1200000000", o.GetAnnotations()["deploy.shipkit.dev/revision"])
			}
		})
	}
}

func TestMerge(t *testing.T) {
	f := func(id, loc string) scan.Finding {
		return scan.Finding{ID: id, Package: "golang.org/x/text", Version: "v0.3.7", Type: "go-module", Locations: []string{loc}}
	}
	scanner := &report.Tool{Name: "grype"}
	r := merge("reg/app@sha256:1", []*scan.Report{
		{Findings: []scan.Finding{f("A", "/app/amd64"), f("B", "/app/amd64")}, Tool: scanner},
		{Findings: []scan.Finding{f("A", "/app/arm64")}, Suppressed: []report.Suppression{{By: "rule 1"}}},
	})
	assert.Equal(t, "reg/app@sha256:1", r.Target)
	require.Len(t, r.Findings, 2)
	assert.Equal(t, []string{"/app/amd64", "/app/arm64"}, r.Findings[0].Locations)
	assert.Equal(t, "B", r.Findings[1].ID)
	assert.Len(t, r.Suppressed, 1)
	assert.Same(t, scanner, r.Tool)
}

func TestCountFindings(t *testing.T) {
	assert.Equal(t, "no findings", countFindings(&scan.Report{}))
	assert.Equal(t, "3 findings (1 Critical, 2 Low)", countFindings(&scan.Report{Findings: []scan.Finding{
		{Severity: report.Low}, {Severity: report.Critical}, {Severity: report.Low},
	}}))
}
