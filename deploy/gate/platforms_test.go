package gate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// TestIndexJudgedPerPlatform: a Deployment pins an image index. Each platform's
// report is attested to its own image with the index's digest alone (the predicate
// names its subject) and provenance to the index; the gate resolves the index to
// its platforms through the verifier and judges each on its own reports and the
// index's attestations: one vulnerable platform denies the index, and the reason
// names the platform. No caller-side merging.
func TestIndexJudgedPerPlatform(t *testing.T) {
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	key := testKey(t)
	now := time.Now().UTC()
	critical := report.Finding{ID: "CVE-2024-1", Package: "openssl", Version: "3.0.1", Type: "deb", Severity: report.Critical}

	for _, tt := range []struct {
		name    string
		arm64   []report.Finding
		allowed bool
	}{
		{"every platform clean", nil, true},
		{"arm64 vulnerable", []report.Finding{critical}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			idx, plats := pushIndex(t, host, "team/multi"+map[bool]string{true: "a", false: "b"}[tt.allowed])
			s, err := cosign.NewSigner(key)
			require.NoError(t, err)
			require.NoError(t, s.Sign(t.Context(), idx, sign.WithRecursive()))
			for _, p := range plats {
				r := &report.Report{Target: idx.Context().Digest(p.digest.String()).String(), Subject: p.digest.String(),
					Platform: p.platform.String(), Findings: []report.Finding{},
					Tool: &report.Tool{Name: "grype", FinishedOn: now}}
				if p.platform.Architecture == "arm64" {
					r.Findings = tt.arm64
				}
				pred, err := sign.VulnPredicate(r)
				require.NoError(t, err)
				require.Equal(t, p.digest, pred.Subject)
				require.NoError(t, s.Attest(t.Context(), idx, pred), "attested with the index's digest")
			}
			prov, err := sign.Provenance{BuilderID: "https://ci.example.com", SourceRepository: "https://github.com/example/app",
				SourceRevision: "9f2c1e0"}.Predicate()
			require.NoError(t, err)
			require.NoError(t, s.Attest(t.Context(), idx, prov))

			dec := gateImage(t, key, idx, gate.FailOn(report.High), gate.RequireAttestations(sign.PredicateSLSAProvenance, sign.PredicateVuln))
			if tt.allowed {
				assert.True(t, dec.Allowed(), "%s", dec)
				return
			}
			require.Len(t, dec.Reasons, 1, "%s", dec)
			r := dec.Reasons[0]
			assert.Equal(t, sign.ReasonVulnerable, r.Code)
			assert.True(t, strings.HasPrefix(r.Message, "linux/arm64: vulnerability report signed by ci"), r.Message)
			assert.Contains(t, r.Message, "CVE-2024-1 (Critical, openssl@3.0.1)")
			assert.Equal(t, idx.String(), r.Image)
			t.Log(dec)
		})
	}
}

// TestIndexReportOnTheIndex: a platform without a report of its own is judged on
// the index's; a platform with neither is denied, named.
func TestIndexReportOnTheIndex(t *testing.T) {
	amd := &v1.Platform{OS: "linux", Architecture: "amd64"}
	arm := &v1.Platform{OS: "linux", Architecture: "arm64"}
	clean := vulnAttestation(t, time.Now())
	verdict := func(indexAtts []sign.Attestation) func(name.Digest) (*sign.Verified, error) {
		return func(d name.Digest) (*sign.Verified, error) {
			return &sign.Verified{Digest: d, Signers: []string{"ci"}, Attestations: indexAtts, Platforms: []sign.PlatformVerified{
				{Digest: d.Context().Digest(digestB), Platform: amd, Attestations: []sign.Attestation{clean}},
				{Digest: d.Context().Digest("sha256:" + strings.Repeat("c", 64)), Platform: arm},
			}}, nil
		}
	}
	objs := []*unstructured.Unstructured{deployment("web", "registry.example/app@"+digestA)}
	for _, tt := range []struct {
		name  string
		atts  []sign.Attestation
		codes []string
	}{
		{"the index's report covers arm64", []sign.Attestation{clean}, nil},
		{"arm64 has no report anywhere", nil, []string{"Deployment/web app no-vulnerability-report"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVerifier{verdicts: map[string]func(name.Digest) (*sign.Verified, error){digestA: verdict(tt.atts)}}
			g, err := gate.New(gate.WithVerifier(v), gate.FailOn(report.High))
			require.NoError(t, err)
			d, err := g.Check(t.Context(), objs)
			require.NoError(t, err)
			assert.Equal(t, tt.codes, codes(d), "%s", d)
			if len(tt.codes) > 0 {
				assert.Contains(t, d.Reasons[0].Message, "linux/arm64: no vulnerability report")
			}
		})
	}
}

type platformImage struct {
	digest   v1.Hash
	platform *v1.Platform
}

// pushIndex pushes an index of a linux/amd64 and a linux/arm64 image to host/repo.
func pushIndex(t *testing.T, host, repo string) (name.Digest, []platformImage) {
	t.Helper()
	var adds []mutate.IndexAddendum
	var plats []platformImage
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(128, 1)
		require.NoError(t, err)
		h, err := img.Digest()
		require.NoError(t, err)
		p := &v1.Platform{OS: "linux", Architecture: arch}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
		plats = append(plats, platformImage{digest: h, platform: p})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	tag, err := name.NewTag(host + "/" + repo + ":build")
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(tag, idx))
	h, err := idx.Digest()
	require.NoError(t, err)
	return tag.Context().Digest(h.String()), plats
}
