package sbom_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// TestMaxImageSizeInvalid: a negative size limit is refused, not replaced by the
// default, and every bad option is named at once with the one sentinel of every
// stage.
func TestMaxImageSizeInvalid(t *testing.T) {
	_, err := sbom.New(sbom.WithMaxImageSize(-1), sbom.WithConcurrency(0)).Catalog(context.Background(), testimage.Debian(t, "amd64"))
	require.ErrorIs(t, err, sbom.ErrInvalidOption)
	require.ErrorIs(t, err, deploy.ErrInvalidOption, "one sentinel for every stage")
	assert.ErrorContains(t, err, "WithMaxImageSize(-1)")
	assert.ErrorContains(t, err, "WithConcurrency(0)")
}
