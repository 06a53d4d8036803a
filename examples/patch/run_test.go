package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/build/patch"
	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/deploy/rollout"
	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/internal/testbed/vulndb"
	scanfleet "github.com/shipkit/shipkit/scan/fleet"
)

// running returns the running uses of the inventory, by image digest, as
// cluster/namespace/Kind/name/container.
func running(inv *deployfleet.Inventory) map[string][]string {
	out := map[string][]string{}
	for _, im := range inv.Images {
		for _, u := range im.Uses {
			if u.Running {
				out[im.Digest] = append(out[im.Digest], u.Cluster+"/"+u.Workload.Namespace+"/"+u.Workload.Kind+"/"+u.Workload.Name+"/"+u.Container)
			}
		}
	}
	return out
}

// The whole loop on two test control planes: the application runs in both, the
// inventory read from them and the fleet report show its workloads vulnerable,
// the base is patched, the running image is found stale, rebased, signed, attested
// and admitted by the gate, rolled out (a canary in east, an apply in west), and
// the next inventory and report show every workload current and clean, the CVE
// fixed.
func TestPatchLoop(t *testing.T) {
	ctx := context.Background()
	clusters, stopClusters, err := startClusters(ctx, "east", "west")
	testbed.Check(t, err)
	t.Cleanup(stopClusters)
	t.Logf("two control planes: %s", memory(childRSS()))
	host, stop, err := registry.NewInProcess()
	require.NoError(t, err)
	t.Cleanup(stop)
	reg, err := name.NewRegistry(host, name.Insecure)
	require.NoError(t, err)
	db, err := vulndb.Write(ctx, t.TempDir(), vulndb.Fixtures())
	require.NoError(t, err)
	var log bytes.Buffer
	out, err := run(ctx, config{Registry: reg, DB: db.RootDir, Clusters: clusters, Out: &log})
	t.Log("\n" + log.String())
	require.NoError(t, err)
	require.NoError(t, closed(out))

	// Before: the inventory, read from both clusters, has the application running
	// in each; scanned from its verified SBOM, it is vulnerable there.
	app := out.App.String()
	want := []string{"east/shop/Deployment/web/web", "west/shop/Deployment/web/web"}
	require.Len(t, out.InventoryBefore.Clusters, 2)
	assert.Equal(t, "east", out.InventoryBefore.Clusters[0].Name)
	assert.Equal(t, "west", out.InventoryBefore.Clusters[1].Name)
	assert.Equal(t, map[string][]string{app: want}, running(out.InventoryBefore))
	require.Len(t, out.Before.Images, 1)
	assert.Equal(t, app, out.Before.Images[0].Image)
	assert.Equal(t, scanfleet.Scanned, out.Before.Images[0].Status)
	require.Len(t, out.Before.Advisories, 1)
	adv := out.Before.Advisories[0]
	assert.Equal(t, "CVE-2023-4911", adv.ID)
	require.Len(t, adv.Affected, 1)
	assert.Equal(t, "libc6", adv.Affected[0].Package)
	var where []string
	for _, w := range adv.Affected[0].Workloads {
		if w.Running {
			where = append(where, w.String())
		}
	}
	assert.Equal(t, []string{"east/shop/Deployment/web", "west/shop/Deployment/web"}, where)

	// Stale, rebased onto the patched base, admitted by the gate.
	require.Len(t, out.Checked.Images, 1)
	assert.Equal(t, patch.Stale, out.Checked.Images[0].Status)
	require.Len(t, out.Stale, 1)
	assert.Equal(t, out.Stale[0].Current, out.Patched.NewBase)
	require.NoError(t, out.Decision.Err())
	require.NotNil(t, out.Rollout)
	assert.Equal(t, rollout.Promoted, out.Rollout.Phase)

	// In the clusters: the rolled-out Deployments' pod templates name the new digest.
	next := out.Patched.New.String()
	for _, c := range clusters {
		client, err := kubernetes.NewForConfig(c.Config)
		require.NoError(t, err)
		d, err := client.AppsV1().Deployments("shop").Get(ctx, "web", metav1.GetOptions{})
		require.NoError(t, err)
		assert.Equal(t, next, d.Spec.Template.Spec.Containers[0].Image, c.Name)
		assert.Equal(t, "stable", d.Spec.Template.Labels[rollout.TrackLabel], c.Name)
	}

	// After: the inventory has only the new digest running, in both clusters;
	// scanned, clean, current; the CVE is among the fixed.
	assert.Equal(t, map[string][]string{next: want}, running(out.InventoryAfter))
	for _, im := range out.InventoryAfter.Images {
		assert.Equal(t, next, im.Digest, "nothing declares the old image any more")
	}
	require.Len(t, out.After.Images, 1)
	assert.Equal(t, scanfleet.Scanned, out.After.Images[0].Status)
	assert.Equal(t, next, out.After.Images[0].Image)
	assert.Empty(t, out.After.Advisories)
	require.NotNil(t, out.After.Diff)
	require.Len(t, out.After.Diff.Fixed, 1)
	assert.Equal(t, "CVE-2023-4911", out.After.Diff.Fixed[0].Advisory)
	require.Len(t, out.Current.Images, 1)
	assert.Equal(t, patch.Current, out.Current.Images[0].Status)
}
