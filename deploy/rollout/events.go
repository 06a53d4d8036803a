package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/observe"
)

// Stage is the stage name of the events a rollout reports to its observer:
// [observe.StageRollout].
const Stage = observe.StageRollout

// ReportingController is the controller named in the Kubernetes Events of a rollout.
const ReportingController = "shipkit.dev/rollout"

// The reasons of the Kubernetes Events a rollout writes.
const (
	ReasonStepStarted   = "RolloutStepStarted"
	ReasonStepCompleted = "RolloutStepCompleted"
	ReasonStepFailed    = "RolloutStepFailed"
	ReasonPaused        = "RolloutPaused"
	ReasonPromoted      = "RolloutPromoted"
	ReasonAborted       = "RolloutAborted"
)

// reporter tells the caller's observer and the cluster what a rollout does.
type reporter struct {
	client   kubernetes.Interface
	kube     bool
	identity string
	observer observe.Observer
	log      *slog.Logger
}

// observe reports an event of stage [observe.StageRollout]. It is not an
// [observe.Step], whose events pair up and whose Failed message is the error's: a
// rollout also reports lone events (a pause is Finished only, a step interrupted
// before it started is Failed only), and a failed step's message is the step
// result's ("interrupted; the next run resumes here"), not the error's.
func (r *reporter) observe(step string, phase observe.Phase, msg string, err error) {
	r.observer.Observe(observe.Event{Stage: Stage, Step: step, Phase: phase, Message: msg, Err: err, Time: time.Now()})
}

// kubeEvent writes an events.k8s.io/v1 Event about d. Failures are logged: an Event
// is a courtesy, never a reason to stop a rollout.
func (r *reporter) kubeEvent(ctx context.Context, d *appsv1.Deployment, warning bool, reason, action, note string) {
	if !r.kube || d == nil {
		return
	}
	typ := corev1.EventTypeNormal
	if warning {
		typ = corev1.EventTypeWarning
	}
	if len(note) > 1000 {
		note = note[:997] + "..."
	}
	now := time.Now()
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", d.Name, now.UnixNano()),
			Namespace: d.Namespace,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: ReportingController,
		ReportingInstance:   truncate(r.identity, 128),
		Action:              truncate(action, 128),
		Reason:              reason,
		Regarding: corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment",
			Namespace: d.Namespace, Name: d.Name, UID: d.UID},
		Note: note,
		Type: typ,
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := r.client.EventsV1().Events(d.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		r.log.Warn("could not write Kubernetes Event", "deployment", d.Namespace+"/"+d.Name, "reason", reason, "error", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.TrimSpace(s[:n])
}
