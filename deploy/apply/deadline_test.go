package apply

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestDeadlineExceededBefore: a Deployment's ProgressDeadlineExceeded from before
// the wait (kept by the controller after a rollback's new spec) is not this
// rollout's failure; one from during the wait is.
func TestDeadlineExceededBefore(t *testing.T) {
	since := time.Date(2026, 12, 7, 12, 0, 5, 400e6, time.UTC)
	deployment := func(kind, reason, at string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apps/v1", "kind": kind,
			"status": map[string]any{"conditions": []any{
				map[string]any{"type": "Available", "status": "True", "lastUpdateTime": "2026-12-07T12:00:00Z"},
				map[string]any{"type": "Progressing", "status": "False", "reason": reason, "lastUpdateTime": at},
			}},
		}}
	}
	assert.True(t, deadlineExceededBefore(deployment("Deployment", "ProgressDeadlineExceeded", "2026-12-07T12:00:05Z"), since), "same second, before the wait")
	assert.True(t, deadlineExceededBefore(deployment("Deployment", "ProgressDeadlineExceeded", "2026-12-07T11:59:00Z"), since))
	assert.False(t, deadlineExceededBefore(deployment("Deployment", "ProgressDeadlineExceeded", "2026-12-07T12:00:06Z"), since), "exceeded during the wait")
	assert.False(t, deadlineExceededBefore(deployment("Deployment", "ReplicaSetUpdated", "2026-12-07T11:59:00Z"), since))
	assert.False(t, deadlineExceededBefore(deployment("StatefulSet", "ProgressDeadlineExceeded", "2026-12-07T11:59:00Z"), since))
	assert.False(t, deadlineExceededBefore(deployment("Deployment", "ProgressDeadlineExceeded", "garbage"), since), "an unreadable time is not stale")
}
