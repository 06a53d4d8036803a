package gate_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// The tests of this file reproduce issue 13's items 2 and 5 through the real parts:
// reports signed with sign/cosign onto images in an in-process registry, verified by
// the cosign verifier and judged by the gate.

// reportFixture reads a foreign report of scan/report's test data (see its README).
func reportFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "scan", "report", "testdata", name))
	require.NoError(t, err)
	return b
}

// vulnPredicate builds cosign's vuln predicate around result by hand, dated finished,
// as a pipeline does around grype's JSON.
func vulnPredicate(t *testing.T, result string, finished time.Time) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"invocation": map[string]any{"parameters": nil, "uri": "", "event_id": "", "builder.id": ""},
		"scanner": map[string]any{"uri": "pkg:golang/github.com/anchore/grype@v0.121.2", "version": "0.121.2",
			"db": map[string]any{"uri": "", "version": ""}, "result": json.RawMessage(result)},
		"metadata": map[string]any{"scanStartedOn": finished, "scanFinishedOn": finished},
	})
	require.NoError(t, err)
	return b
}

// redated sets the metadata times of a cosign vuln predicate.
func redated(t *testing.T, body []byte, finished time.Time) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	m["metadata"] = map[string]any{"scanStartedOn": finished, "scanFinishedOn": finished}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// attestedImage pushes a random image to host/repo, signs it with key and attests
// each vulnerability predicate body, in order.
func attestedImage(t *testing.T, host, repo string, key *cosign.PrivateKey, bodies ...[]byte) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	require.NoError(t, err)
	tag, err := name.NewTag(host + "/" + repo + ":build")
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, img))
	h, err := img.Digest()
	require.NoError(t, err)
	d := tag.Context().Digest(h.String())
	// The legacy layout: rewriteAttestations edits its .att tag.
	s, err := cosign.NewSigner(key, cosign.WithFormat(cosign.FormatLegacy))
	require.NoError(t, err)
	require.NoError(t, s.Sign(t.Context(), d))
	for _, b := range bodies {
		require.NoError(t, s.Attest(t.Context(), d, sign.Predicate{Type: sign.PredicateVuln, Body: b}))
	}
	return d
}

// gateImage runs a gate with a fresh cosign verifier of key and opts on a
// Deployment that runs d, whose registry (the in-process one, plain HTTP) is
// allowed as insecure.
func gateImage(t *testing.T, key *cosign.PrivateKey, d name.Digest, opts ...gate.Option) *deploy.Decision {
	t.Helper()
	v, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}})
	require.NoError(t, err)
	g, err := gate.New(append([]gate.Option{gate.WithVerifier(v),
		gate.WithRegistries(gate.Registries{Insecure: []string{d.RegistryStr()}})}, opts...)...)
	require.NoError(t, err)
	dec, err := g.Check(t.Context(), []*unstructured.Unstructured{deployment("web", d.String())})
	require.NoError(t, err)
	return dec
}

func testKey(t *testing.T) *cosign.PrivateKey {
	t.Helper()
	pair, err := cosign.GenerateKeyPair([]byte("pw"))
	require.NoError(t, err)
	key, err := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("pw"))
	require.NoError(t, err)
	return key
}

// TestForeignReports: reports in the formats people attest, honestly signed by the
// trusted key, carry Criticals, and documents that say nothing are no report; at
// FailOn(High) every image is denied, for the right reason. (Before the fix, each
// one was read as a shipkit report without findings and allowed.)
func TestForeignReports(t *testing.T) {
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	key := testKey(t)
	now := time.Now().UTC()
	trivy := redated(t, reportFixture(t, "trivy-cosign-vuln.json"), now)
	grype := reportFixture(t, "grype-alpine.json")
	grypeNow := bytes.Replace(grype, []byte(`"timestamp": "2025-09-01T09:14:03.118225+02:00"`),
		[]byte(`"timestamp": "`+now.Format(time.RFC3339)+`"`), 1)
	require.NotEqual(t, grype, grypeNow)
	olderCritical := vulnPredicate(t, `{"target":"app","findings":[{"id":"CVE-2024-1","package":"openssl","version":"3.0.1","type":"deb","severity":"Critical"}]}`,
		now.Add(-time.Hour))

	tests := []struct {
		name   string
		bodies [][]byte
		code   string
		msg    string
	}{
		{"trivy --format cosign-vuln with a Critical", [][]byte{trivy}, "vulnerable",
			"(trivy report, scan of " + now.Format(time.RFC3339) + "): 2 finding(s) at or above High: CVE-2021-36159 (Critical, apk-tools@2.10.6-r0)"},
		{"grype JSON in cosign's vuln predicate with a Critical", [][]byte{vulnPredicate(t, string(grype), now)}, "vulnerable",
			"(grype report, scan of " + now.Format(time.RFC3339) + "): 2 finding(s) at or above High: CVE-2023-38545 (Critical, libcurl@8.2.1-r0)"},
		{"grype JSON attested as the predicate itself", [][]byte{grypeNow}, "vulnerable", "CVE-2023-38545 (Critical, libcurl@8.2.1-r0)"},
		{"{}", [][]byte{vulnPredicate(t, `{}`, now)}, "unreadable-report", "the document is an empty object"},
		{"null", [][]byte{vulnPredicate(t, `null`, now)}, "unreadable-report", "scanner.result is null"},
		{"garbage", [][]byte{vulnPredicate(t, `"<html>garbage</html>"`, now)}, "unreadable-report", "not a JSON object"},
		{"a newer Trivy report does not hide an older one", [][]byte{olderCritical, trivy}, "vulnerable", "CVE-2021-36159 (Critical"},
		{"a newer unreadable report does not let an older one decide", [][]byte{olderCritical, vulnPredicate(t, `{}`, now)}, "unreadable-report",
			"newest vulnerability report signed by ci (scan of " + now.Format(time.RFC3339) + ") cannot be read"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := attestedImage(t, host, "team/app"+string(rune('a'+i)), key, tt.bodies...)
			dec := gateImage(t, key, d, gate.FailOn(report.High))
			require.False(t, dec.Allowed(), "a Critical or an unreadable report passed the gate")
			require.Len(t, dec.Reasons, 1, "%s", dec)
			assert.Equal(t, tt.code, string(dec.Reasons[0].Code), "%s", dec)
			assert.Contains(t, dec.Reasons[0].Message, tt.msg)
			assert.Equal(t, d.String(), dec.Reasons[0].Image)
			t.Log(dec)
		})
	}
}

// TestDeletedNewestReport: an image has an old clean report and a new one with a
// Critical. Whoever can push to the repository rewrites the .att tag without the new
// one; the old clean report now decides, but it is older than the default maximum
// report age, so the image stays denied. Without the bound it would pass: that is
// what the bound defends.
func TestDeletedNewestReport(t *testing.T) {
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	key := testKey(t)
	now := time.Now().UTC()
	old := vulnPredicate(t, `{"target":"app","findings":[]}`, now.Add(-10*24*time.Hour))
	critical := vulnPredicate(t, `{"target":"app","findings":[{"id":"CVE-2024-1","package":"openssl","version":"3.0.1","type":"deb","severity":"Critical"}]}`, now)
	d := attestedImage(t, host, "team/app", key, old, critical)

	dec := gateImage(t, key, d, gate.FailOn(report.High))
	require.Len(t, dec.Reasons, 1, "%s", dec)
	assert.Equal(t, "vulnerable", string(dec.Reasons[0].Code))

	kept := rewriteAttestations(t, d, func(finished time.Time) bool { return finished.Before(now.Add(-24 * time.Hour)) })
	require.Equal(t, 1, kept, "the .att tag now holds the old report alone")

	dec = gateImage(t, key, d, gate.FailOn(report.High))
	require.False(t, dec.Allowed(), "deleting the newest report re-admitted the image")
	require.Len(t, dec.Reasons, 1, "%s", dec)
	assert.Equal(t, "stale-report", string(dec.Reasons[0].Code))
	assert.Contains(t, dec.Reasons[0].Message, "older than the maximum report age 168h0m0s: scan and attest the image again")
	t.Log(dec)

	// What the bound defends: without it the old clean report decides.
	dec = gateImage(t, key, d, gate.FailOn(report.High), gate.MaxReportAge(sign.NoMaxReportAge))
	assert.True(t, dec.Allowed(), "%s", dec)
}

// rewriteAttestations rewrites d's cosign .att tag through the registry, keeping
// the layers whose vuln predicate's scanFinishedOn keep accepts, as anyone with push
// rights to the repository can; it returns how many layers it kept.
func rewriteAttestations(t *testing.T, d name.Digest, keep func(finished time.Time) bool) int {
	t.Helper()
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".att")
	att, err := remote.Image(tag)
	require.NoError(t, err)
	m, err := att.Manifest()
	require.NoError(t, err)
	layers, err := att.Layers()
	require.NoError(t, err)
	require.Len(t, layers, len(m.Layers))
	var adds []mutate.Addendum
	for i, l := range layers {
		if keep(attestedFinish(t, l)) {
			adds = append(adds, mutate.Addendum{Layer: l, Annotations: m.Layers[i].Annotations, MediaType: m.Layers[i].MediaType})
		}
	}
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, m.MediaType), m.Config.MediaType)
	rewritten, err := mutate.Append(base, adds...)
	require.NoError(t, err)
	require.NoError(t, remote.Write(tag, rewritten))
	return len(adds)
}

// attestedFinish reads the scanFinishedOn of the vuln predicate in a DSSE layer.
func attestedFinish(t *testing.T, l interface{ Uncompressed() (io.ReadCloser, error) }) time.Time {
	t.Helper()
	rc, err := l.Uncompressed()
	require.NoError(t, err)
	defer rc.Close()
	var env struct{ Payload string }
	require.NoError(t, json.NewDecoder(rc).Decode(&env))
	st, err := base64.StdEncoding.DecodeString(env.Payload)
	require.NoError(t, err)
	var statement struct {
		Predicate struct {
			Metadata struct {
				ScanFinishedOn time.Time `json:"scanFinishedOn"`
			} `json:"metadata"`
		} `json:"predicate"`
	}
	require.NoError(t, json.Unmarshal(st, &statement))
	return statement.Predicate.Metadata.ScanFinishedOn
}
