package fleet_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/scan/fleet"
	"github.com/shipkit/shipkit/scan/report"
)

// A cluster that could not be read fails FailOn: what runs there was never
// checked, so a clean report of the others must not pass the gate, unless the
// caller allows it. A report read back from JSON (Err not encoded) fails too.
func TestFailOnUnreadCluster(t *testing.T) {
	rep := &fleet.Report{Clusters: []deployfleet.ClusterInventory{
		{Name: "east", Pods: 3},
		{Name: "gone", Error: "dial tcp 127.0.0.1:1: connect: connection refused"},
	}}
	err := rep.FailOn(report.Critical)
	require.ErrorIs(t, err, fleet.ErrUnreadClusters)
	assert.NotErrorIs(t, err, fleet.ErrUnchecked)
	assert.NotErrorIs(t, err, report.ErrSeverity)
	assert.Contains(t, err.Error(), "gone (dial tcp 127.0.0.1:1: connect: connection refused)")
	assert.NotContains(t, err.Error(), "east")
	assert.NoError(t, rep.FailOn(report.Critical, fleet.AllowUnreadClusters()))
	assert.ErrorIs(t, rep.FailOn(report.Critical, fleet.AllowUnchecked()), fleet.ErrUnreadClusters,
		"allowing unchecked images does not allow unread clusters")

	all := &fleet.Report{Clusters: []deployfleet.ClusterInventory{{Name: "east"}, {Name: "west"}}}
	assert.NoError(t, all.FailOn(report.Critical), "every cluster read, nothing found")
}
