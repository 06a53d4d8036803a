package sbom_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/sign"
)

// Each platform's SBOM predicate names its platform image, so a caller attests it
// with the index's digest alone.
func TestPredicate(t *testing.T) {
	testimage.GoBinary(t)
	isolateTemp(t)
	sboms, err := sbom.New().CatalogIndex(context.Background(), testimage.Index(t))
	require.NoError(t, err)
	require.Len(t, sboms, 2)
	for _, s := range sboms {
		p, err := sbom.Predicate(s, sbom.SPDXJSON)
		require.NoError(t, err)
		assert.Equal(t, sign.PredicateSPDX, p.Type)
		assert.Equal(t, s.Subject, p.Subject)
		require.NoError(t, p.Validate())
		assert.Contains(t, string(p.Body), `"spdxVersion":"SPDX-2.3"`)

		p, err = sbom.Predicate(s, sbom.CycloneDXJSON)
		require.NoError(t, err)
		assert.Equal(t, sign.PredicateCycloneDX, p.Type)
		assert.Equal(t, s.Subject, p.Subject)
	}
	assert.NotEqual(t, sboms[0].Subject, sboms[1].Subject)

	_, err = sbom.Predicate(sboms[0], sbom.SyftJSON)
	assert.ErrorContains(t, err, `format "syft-json" has no attestation predicate type`)
	_, err = sbom.Predicate(nil, sbom.SPDXJSON)
	assert.Error(t, err)
}
