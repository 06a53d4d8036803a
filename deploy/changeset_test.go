package deploy_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/shipkit/shipkit/deploy"
)

func TestChangeSetSummary(t *testing.T) {
	var none *deploy.ChangeSet
	assert.Equal(t, "no objects", none.Summary())
	assert.Equal(t, "no objects", (&deploy.ChangeSet{}).Summary())
	cs := &deploy.ChangeSet{}
	for _, a := range []deploy.Action{deploy.Pruned, deploy.Unchanged, deploy.Created, deploy.Unchanged, deploy.Created, deploy.Unchanged} {
		cs.Append(deploy.Change{Action: a})
	}
	assert.Equal(t, "2 created, 3 unchanged, 1 pruned", cs.Summary(), "counted in the order created, configured, unchanged, pruned")
}
