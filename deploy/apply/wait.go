package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/observe"
)

// RolloutError reports an object whose rollout failed (a Deployment past its
// progress deadline, a failed Job, a custom resource that is Stalled): waiting
// longer would not help.
type RolloutError struct {
	Object  deploy.ObjectRef
	Message string
}

// Error names the object whose rollout failed and the reason it gave.
func (e *RolloutError) Error() string { return fmt.Sprintf("%s failed: %s", e.Object, e.Message) }

// TimeoutError lists the objects that were not healthy when a wait ended.
type TimeoutError struct {
	// Pending maps each object that was not healthy to kstatus's last message.
	Pending map[deploy.ObjectRef]string
	Err     error // context.DeadlineExceeded or the context's error
}

// Error lists the objects not yet healthy, each with its state, and the cause.
func (e *TimeoutError) Error() string {
	var lines []string
	for ref, msg := range e.Pending {
		lines = append(lines, fmt.Sprintf("%s (%s)", ref, msg))
	}
	sort.Strings(lines)
	return fmt.Sprintf("%d object(s) not healthy: %s: %v", len(lines), strings.Join(lines, "; "), e.Err)
}

// Unwrap returns the context's error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// Wait waits up to timeout (or until ctx ends) for every object to be healthy:
// kstatus's Current status, which means observedGeneration caught up, a Deployment's
// updated replicas are all available (its new ReplicaSet rolled out), a StatefulSet
// or DaemonSet rolled out, a Job Complete, a CRD Established, and a custom resource's
// Ready condition True. It also waits on a custom resource whose Available condition
// is False. A failed rollout returns a [RolloutError] at once; a timeout returns a
// [TimeoutError] naming what was still pending. A custom resource without status or
// conditions counts as healthy (its controller cannot be told apart from none).
func (m *Manager) Wait(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error {
	prepared, err := m.prepare(objs)
	if err != nil {
		return err
	}
	for _, o := range prepared {
		if o.mapping == nil {
			return &ObjectError{Object: o.ref, Op: "wait", Err: ErrUnknownKind}
		}
	}
	return m.wait(ctx, prepared, timeout)
}

func (m *Manager) wait(ctx context.Context, objs []*object, timeout time.Duration) error {
	st := m.step("wait", len(objs))
	err := m.waitFor(ctx, objs, timeout, st)
	st.End(err, fmt.Sprintf("%d objects healthy", len(objs)))
	return err
}

func (m *Manager) waitFor(ctx context.Context, objs []*object, timeout time.Duration, step *observe.Step) error {
	since := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pending := map[int]string{}
	for i := range objs {
		pending[i] = "not checked yet"
	}
	tick := time.NewTicker(m.opts.PollInterval)
	defer tick.Stop()
	for {
		idx := make([]int, 0, len(pending))
		for i := range pending {
			idx = append(idx, i)
		}
		sort.Ints(idx)
		var (
			mu     sync.Mutex
			failed []error
		)
		m.forEach(ctx, len(idx), func(ctx context.Context, k int) {
			o := objs[idx[k]]
			st, msg, err := m.health(ctx, o, since)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && ctx.Err() == nil && !expired(ctx):
				pending[idx[k]] = err.Error()
			case err != nil: // the wait is ending: keep the last status, which says why
			case st == status.CurrentStatus:
				delete(pending, idx[k])
				step.Progress(o.ref.String() + " " + string(st))
			case st == status.FailedStatus:
				failed = append(failed, &RolloutError{Object: o.ref, Message: msg})
			default:
				pending[idx[k]] = fmt.Sprintf("%s: %s", st, msg)
			}
		})
		if len(failed) > 0 {
			return errors.Join(failed...)
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			te := &TimeoutError{Pending: map[deploy.ObjectRef]string{}, Err: ctx.Err()}
			for i, msg := range pending {
				te.Pending[objs[i].ref] = msg
			}
			return te
		case <-tick.C:
		}
	}
}

// health reads one object and computes its kstatus. A Deployment whose progress
// deadline was exceeded before since (the wait's start) has not failed this
// rollout: the controller keeps that condition after a new spec (a rollback to a
// ReplicaSet that still exists, say) until it sees progress, while observedGeneration
// has already caught up, so kstatus would call the new rollout failed at once.
func (m *Manager) health(ctx context.Context, o *object, since time.Time) (status.Status, string, error) {
	live, err := o.resource(m.client).Get(ctx, o.obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return status.NotFoundStatus, "not found", nil
	}
	if err != nil {
		return status.UnknownStatus, "", err
	}
	res, err := status.Compute(live)
	if err != nil {
		return status.UnknownStatus, "", err
	}
	if res.Status == status.FailedStatus && deadlineExceededBefore(live, since) {
		return status.InProgressStatus, "progress deadline exceeded before this wait; waiting for the controller to see progress", nil
	}
	if res.Status == status.CurrentStatus && conditionStatus(live, "Available") == "False" {
		return status.InProgressStatus, "condition Available is False", nil
	}
	// kstatus calls a Job Current once it has started; a deploy waits for it to
	// finish.
	gvk := live.GroupVersionKind()
	if res.Status == status.CurrentStatus && gvk.Group == "batch" && gvk.Kind == "Job" && conditionStatus(live, "Complete") != "True" {
		return status.InProgressStatus, res.Message, nil
	}
	return res.Status, res.Message, nil
}

// deadlineExceededBefore reports whether u is a Deployment whose Progressing
// condition says ProgressDeadlineExceeded since a time not after since. The
// condition's time is the controller's clock, to the second: with a cluster clock
// behind ours, a deadline exceeded during the wait can look older, and the wait
// then ends in a TimeoutError rather than a RolloutError.
func deadlineExceededBefore(u *unstructured.Unstructured, since time.Time) bool {
	if gvk := u.GroupVersionKind(); gvk.Group != "apps" || gvk.Kind != "Deployment" {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if cm["type"] != "Progressing" || cm["reason"] != "ProgressDeadlineExceeded" {
			continue
		}
		at, _ := cm["lastUpdateTime"].(string)
		t, err := time.Parse(time.RFC3339, at)
		return err == nil && !t.After(since)
	}
	return false
}

// conditionStatus returns the status of u's condition typ, "" when it has none.
func conditionStatus(u *unstructured.Unstructured, typ string) string {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if cm["type"] == typ {
			s, _ := cm["status"].(string)
			return s
		}
	}
	return ""
}

// expired reports whether ctx's deadline has passed, which a client's rate limiter
// notices before ctx itself ends.
func expired(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
