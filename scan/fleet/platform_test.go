package fleet_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/scan/fleet"
	"github.com/shipkit/shipkit/sign"
)

// platformVerifier verifies every image as an index of two platform images with
// the attestations given.
type platformVerifier struct {
	index, amd64, arm64 []sign.Attestation
}

const (
	indexDigest = "registry.example/shop/multi@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	amd64Digest = "registry.example/shop/multi@sha256:2222222222222222222222222222222222222222222222222222222222222222"
	arm64Digest = "registry.example/shop/multi@sha256:3333333333333333333333333333333333333333333333333333333333333333"
)

func (p platformVerifier) Verify(_ context.Context, d name.Digest) (*sign.Verified, error) {
	return &sign.Verified{Digest: d, Signers: []string{"ci"}, Attestations: p.index, Platforms: []sign.PlatformVerified{
		{Digest: name.MustParseReference(amd64Digest).(name.Digest), Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}, Attestations: p.amd64},
		{Digest: name.MustParseReference(arm64Digest).(name.Digest), Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}, Attestations: p.arm64},
	}}, nil
}

// spdxText is an SPDX SBOM of golang.org/x/text at version (oneAdvisory affects v0.3.6).
func spdxText(version string) sign.Attestation {
	doc := `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"app",
	"documentNamespace":"https://example.com/app","creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: example"]},
	"packages":[{"name":"golang.org/x/text","SPDXID":"SPDXRef-Package-text","versionInfo":"VERSION","downloadLocation":"NOASSERTION",
	"externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:golang/golang.org/x/text@VERSION"}]}]}`
	return sign.Attestation{PredicateType: sign.PredicateSPDX, Predicate: []byte(strings.ReplaceAll(doc, "VERSION", version)), Signer: "ci"}
}

// cdxText is a CycloneDX SBOM of golang.org/x/text at version.
func cdxText(version string) sign.Attestation {
	doc := `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[{"bom-ref":"text","type":"library",
	"name":"golang.org/x/text","version":"VERSION","purl":"pkg:golang/golang.org/x/text@VERSION"}]}`
	return sign.Attestation{PredicateType: sign.PredicateCycloneDX, Predicate: []byte(strings.ReplaceAll(doc, "VERSION", version)), Signer: "ci"}
}

func rescanIndex(t *testing.T, v platformVerifier) fleet.ImageStatus {
	t.Helper()
	inv := &deployfleet.Inventory{Images: []deployfleet.Image{{Digest: indexDigest}}}
	rep, err := fleet.Rescan(t.Context(), inv, fleet.Options{Verifier: v, Scanner: oneAdvisory{}})
	require.NoError(t, err)
	require.Len(t, rep.Images, 1)
	return rep.Images[0]
}

// TestRescanPlatformSBOMs: a platform image's own SBOM attestation is matched
// rather than the index's, even when the index's is of a preferred format; the
// index's serves a platform without its own; a platform with none is no-sbom,
// with a reason naming it.
func TestRescanPlatformSBOMs(t *testing.T) {
	// The index's SPDX says v0.3.6 (affected); each platform's own CycloneDX says v0.3.8.
	st := rescanIndex(t, platformVerifier{index: []sign.Attestation{spdxText("v0.3.6")},
		amd64: []sign.Attestation{cdxText("v0.3.8")}, arm64: []sign.Attestation{cdxText("v0.3.8")}})
	assert.Equal(t, fleet.Scanned, st.Status, "%+v", st.Reasons)
	assert.Zero(t, st.Findings, "each platform's own SBOM is read, not the index's")
	assert.Equal(t, []string{"cyclonedx-json"}, st.SBOMFormats)

	// arm64 has no SBOM of its own: the index's serves it.
	st = rescanIndex(t, platformVerifier{index: []sign.Attestation{spdxText("v0.3.6")}, amd64: []sign.Attestation{cdxText("v0.3.8")}})
	assert.Equal(t, fleet.Scanned, st.Status, "%+v", st.Reasons)
	assert.Equal(t, 1, st.Findings, "only arm64, from the index's SBOM")

	// arm64 has no SBOM at all: no-sbom, naming it.
	st = rescanIndex(t, platformVerifier{amd64: []sign.Attestation{cdxText("v0.3.8")}})
	assert.Equal(t, fleet.NoSBOM, st.Status, "%+v", st.Reasons)
	require.Len(t, st.Reasons, 1)
	assert.Equal(t, string(fleet.NoSBOM), st.Reasons[0].Code)
	assert.Contains(t, st.Reasons[0].Message, "platform linux/arm64")
	assert.NotContains(t, st.Reasons[0].Message, "amd64")

	// amd64's own SBOM does not decode: malformed, with why; arm64 missing is said too.
	bad := cdxText("v0.3.8")
	bad.Predicate = []byte(`{"bomFormat":"CycloneDX"`)
	st = rescanIndex(t, platformVerifier{amd64: []sign.Attestation{bad}})
	assert.Equal(t, fleet.MalformedSBOM, st.Status, "%+v", st.Reasons)
	require.Len(t, st.Reasons, 2, "%+v", st.Reasons)
	assert.Equal(t, string(fleet.MalformedSBOM), st.Reasons[0].Code)
	assert.Contains(t, st.Reasons[0].Message, "2222")
	assert.Equal(t, string(fleet.NoSBOM), st.Reasons[1].Code)
	assert.Contains(t, st.Reasons[1].Message, "platform linux/arm64")
}
