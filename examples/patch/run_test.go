package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build/patch"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/internal/testbed/vulndb"
	scanfleet "github.com/shipkit/shipkit/scan/fleet"
)

// The whole loop: the report shows the workload vulnerable, the base is patched,
// the application is found stale, rebased, signed, attested and admitted by the
// gate, and the next report shows it current and clean with the CVE fixed.
func TestPatchLoop(t *testing.T) {
	ctx := context.Background()
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	reg, err := name.NewRegistry(host, name.Insecure)
	require.NoError(t, err)
	db, err := vulndb.Write(ctx, t.TempDir(), vulndb.Fixtures())
	require.NoError(t, err)
	var log bytes.Buffer
	out, err := run(ctx, config{Registry: reg, DB: db.RootDir, Out: &log})
	require.NoError(t, err, log.String())
	t.Log("\n" + log.String())

	// Before: the application is scanned from its verified SBOM and vulnerable.
	require.Len(t, out.Before.Images, 1)
	assert.Equal(t, scanfleet.Scanned, out.Before.Images[0].Status)
	require.Len(t, out.Before.Advisories, 1)
	adv := out.Before.Advisories[0]
	assert.Equal(t, "CVE-2023-4911", adv.ID)
	require.Len(t, adv.Affected, 1)
	assert.Equal(t, "libc6", adv.Affected[0].Package)
	require.Len(t, adv.Affected[0].Workloads, 1)
	assert.Equal(t, "prod/shop/Deployment/web", adv.Affected[0].Workloads[0].String())

	// Stale, rebased onto the patched base, gated.
	require.Len(t, out.Stale, 1)
	require.Len(t, out.Patched, 1)
	require.Len(t, out.Gated, 1)
	assert.Equal(t, out.Stale[0].Current, out.Patched[0].NewBase)

	// After: scanned, clean, current; the CVE is among the fixed.
	require.Len(t, out.After.Images, 1)
	assert.Equal(t, scanfleet.Scanned, out.After.Images[0].Status)
	assert.Equal(t, out.Patched[0].New.String(), out.After.Images[0].Image)
	assert.Empty(t, out.After.Advisories)
	require.NotNil(t, out.After.Diff)
	require.Len(t, out.After.Diff.Fixed, 1)
	assert.Equal(t, "CVE-2023-4911", out.After.Diff.Fixed[0].Advisory)
	assert.Equal(t, patch.Current, out.Current.Images[0].Status)
}
