package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
)

// canaryRun is one call of CanaryRollout.Run.
type canaryRun struct {
	runner
	r              *CanaryRollout
	spec           *Canary
	stable, canary *appsv1.Deployment
}

func (x *canaryRun) run(ctx context.Context) (*Result, error) {
	var err error
	x.stable, x.canary, err = x.r.preflight(ctx)
	if err != nil {
		return nil, err
	}
	x.target = x.canary
	x.res.Revision = revision(&x.canary.Spec.Template)

	rec, req, release, err := x.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := x.start(rec); err != nil || x.rec.Phase.Done() {
		return x.finish(err)
	}
	x.spawn(x.watchRequests)
	if len(x.spec.Background) > 0 && x.rec.Phase == Progressing {
		x.spawn(func() { x.runBackground(x.spec.Background) })
	}
	switch {
	case x.rec.Phase == Aborting:
		return x.finish(x.abort(x.rec.Message))
	case req.Abort != "" && x.res.Resumed: // an abort wins over everything, promotion too
		return x.finish(x.abort(req.Abort))
	case x.rec.Phase == Promoting:
		return x.finish(x.promote())
	}
	for x.rec.Step < len(x.spec.Steps) {
		done, err := x.step(x.rec.Step)
		if err != nil || done {
			return x.finish(err)
		}
	}
	return x.finish(x.promote())
}

// start decides where the run begins from the recorded state: a fresh rollout for a new
// revision, nothing for one already done, the recorded step otherwise.
func (x *canaryRun) start(rec *Status) error {
	id := x.opts.identity
	switch {
	case rec == nil || rec.Strategy != strategyCanary || rec.Revision != x.res.Revision:
		if rec != nil && !rec.Phase.Done() {
			x.opts.logger.Info("a new revision replaces the rollout in progress",
				"rollout", x.spec.Name, "old", rec.Revision, "new", x.res.Revision, "step", rec.Step)
		}
		x.rec = &Status{Strategy: strategyCanary, Revision: x.res.Revision, Phase: Progressing, Holder: id}
		x.decide("start", fmt.Sprintf("revision %s, %d steps", x.res.Revision, len(x.spec.Steps)))
		// Start from all traffic on stable, whatever an earlier rollout left.
		if err := x.moveTraffic(func(ctx context.Context) error { return x.spec.Router.Reset(ctx) }); err != nil {
			return fmt.Errorf("reset traffic to stable before the first step: %w", err)
		}
		return x.st.save(x.runCtx, x.rec, keyPromote, keyAbort)
	case rec.Phase.Done():
		x.rec = rec
		x.res.Message = fmt.Sprintf("revision %s was already %s", rec.Revision, rec.Phase)
		return nil
	}
	x.rec = rec
	x.rec.Holder = id
	x.res.Resumed, x.res.ResumedAt = true, rec.Step
	if x.opts.resume == RollbackOnResume && (rec.Phase == Progressing || rec.Phase == Paused) {
		x.rec.Phase, x.rec.Message = Aborting, fmt.Sprintf("found the rollout in progress at step %d; OnResume(RollbackOnResume)", rec.Step+1)
		x.decide("abort", x.rec.Message)
		return nil
	}
	if rec.Phase == Paused {
		x.rec.Phase = Progressing
		x.decide("resume", fmt.Sprintf("resumed paused rollout at step %d", rec.Step+1))
	} else {
		x.decide("resume", fmt.Sprintf("resumed at step %d with the canary at %d%%", rec.Step+1, rec.Weight))
	}
	if rec.Phase != Progressing {
		return nil // Promoting or Aborting: finished by run
	}
	// Re-apply the traffic the record says is in effect: never more than planned at
	// this step, whatever the router holds after the crash.
	if err := x.reapply(); err != nil {
		return err
	}
	return x.st.save(x.runCtx, x.rec)
}

// reapply sets the recorded weight and the header matches of the steps before the
// recorded one.
func (x *canaryRun) reapply() error {
	for i := range x.rec.Step {
		if s := x.spec.Steps[i]; s.Kind == KindSetHeaderMatch {
			if err := x.moveTraffic(func(ctx context.Context) error { return x.spec.Router.SetHeaderMatch(ctx, s.Header, s.Value) }); err != nil {
				return err
			}
		}
	}
	w := x.rec.Weight
	return x.moveTraffic(func(ctx context.Context) error { return x.spec.Router.SetWeight(ctx, w) })
}

// step runs step i and records it. done is true when the run ends at this step
// (aborted or paused).
func (x *canaryRun) step(i int) (done bool, err error) {
	s := x.spec.Steps[i]
	name := fmt.Sprintf("step %d/%d %s", i+1, len(x.spec.Steps), s)
	if x.rec.StepStarted.IsZero() {
		x.rec.StepStarted = time.Now().UTC()
	}
	sr := StepResult{Index: i, Step: s, Weight: x.rec.Weight, Started: time.Now()}
	if err := x.runCtx.Err(); err != nil {
		return true, x.interrupted(&sr, name, context.Cause(x.runCtx))
	}
	x.rep.observe(name, observe.Started, fmt.Sprintf("canary at %d%%", x.rec.Weight), nil)
	if s.Kind == KindSetWeight {
		// Record the intent first: a crash during the router call resumes at this step
		// and sets this weight, never a higher one.
		x.rec.Weight = s.Weight
		sr.Weight = s.Weight
	}
	if err := x.st.save(x.runCtx, x.rec); err != nil {
		return true, x.interrupted(&sr, name, err)
	}
	x.rep.kubeEvent(x.runCtx, x.target, false, ReasonStepStarted, string(s.Kind), name)

	var consume []string
	err = x.stepCtx.Err()
	if err == nil {
		switch s.Kind {
		case KindSetWeight:
			err = x.setWeight(s.Weight)
			sr.Message = fmt.Sprintf("canary at %d%%", s.Weight)
		case KindSetHeaderMatch:
			err = x.moveTraffic(func(ctx context.Context) error { return x.spec.Router.SetHeaderMatch(ctx, s.Header, s.Value) })
			sr.Message = fmt.Sprintf("requests with %s: %s go to the canary", s.Header, s.Value)
		case KindPause:
			var promoted bool
			promoted, err = x.pause(max(time.Until(x.rec.StepStarted.Add(s.Duration)), 0))
			if promoted {
				consume, sr.Message = []string{keyPromote}, "promoted before the pause ended"
			}
		case KindPauseUntilPromoted:
			_, err = x.pause(-1)
			consume, sr.Message = []string{keyPromote}, "promoted"
		case KindAnalysis:
			sr.Analysis, err = x.analyse(s.Checks)
			if err == nil {
				sr.Message = sr.Analysis.Message
			}
		}
	}
	sr.Finished = time.Now()

	var intr *interruption
	switch cause := context.Cause(x.stepCtx); {
	case err != nil && errors.As(cause, &intr) && x.runCtx.Err() == nil:
		// Stopped by an abort request or by background analysis.
		sr.Phase, sr.Message = StepInterrupted, intr.reason
		x.failed(&sr, name)
		if intr.phase == analysis.Inconclusive {
			return true, x.inconclusive(intr.reason)
		}
		return true, x.abort(intr.reason)
	case err != nil && errors.Is(err, errNotReady):
		sr.Phase, sr.Message = StepFailed, err.Error()
		x.failed(&sr, name)
		return true, x.abort(fmt.Sprintf("step %d: %v", i+1, err))
	case err != nil:
		return true, x.interrupted(&sr, name, err)
	case sr.Analysis != nil && sr.Analysis.Phase == analysis.Failed:
		sr.Phase = StepFailed
		x.failed(&sr, name)
		return true, x.abort(fmt.Sprintf("step %d analysis failed: %s", i+1, sr.Analysis.Message))
	case sr.Analysis != nil && sr.Analysis.Phase != analysis.Successful:
		sr.Phase = StepInconclusive
		x.failed(&sr, name)
		return true, x.inconclusive(fmt.Sprintf("step %d analysis inconclusive: %s", i+1, sr.Analysis.Message))
	}
	if s.Kind == KindAnalysis {
		x.rec.pass(i)
	}
	return false, x.completed(&sr, name, consume...)
}

// setWeight sizes the canary when asked to, sets the weight and waits until the
// canary is ready for it. A canary without replicas to take its share fails the step.
func (x *canaryRun) setWeight(w int32) error {
	ns, name := x.spec.Namespace, x.canary.Name
	if n := x.spec.CanaryReplicas; n > 0 && w > 0 {
		d, err := x.client.AppsV1().Deployments(ns).Get(x.stepCtx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get canary Deployment %s/%s: %w", ns, name, err)
		}
		if replicas(d) != n {
			if err := scale(x.runCtx, x.client, ns, name, n); err != nil {
				return err
			}
		}
		if err := waitReady(x.stepCtx, x.client, ns, name, x.opts.readyTimeout, x.opts.poll); err != nil {
			return err
		}
	}
	if err := x.moveTraffic(func(ctx context.Context) error { return x.spec.Router.SetWeight(ctx, w) }); err != nil {
		return err
	}
	if err := waitReady(x.stepCtx, x.client, ns, name, x.opts.readyTimeout, x.opts.poll); err != nil {
		return err
	}
	if w == 0 {
		return nil
	}
	d, err := x.client.AppsV1().Deployments(ns).Get(x.stepCtx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get canary Deployment %s/%s: %w", ns, name, err)
	}
	if d.Status.AvailableReplicas == 0 {
		return fmt.Errorf("canary Deployment %s/%s %w: no available replicas to take %d%% of traffic (set Canary.CanaryReplicas for a router that does not scale it)", ns, name, errNotReady, w)
	}
	return nil
}

// inconclusive pauses or aborts as the caller chose.
func (x *canaryRun) inconclusive(reason string) error {
	if x.opts.inconclusive == AbortOnInconclusive {
		return x.abort(reason)
	}
	x.rec.Phase, x.rec.Message = Paused, reason
	x.decide("pause", reason+"; the next Run repeats the step")
	if err := x.st.save(x.runCtx, x.rec); err != nil {
		return err
	}
	x.rep.observe("pause", observe.Finished, reason, nil)
	x.rep.kubeEvent(x.runCtx, x.target, true, ReasonPaused, "Pause", reason)
	return nil
}

// abort sends all traffic to stable and scales the canary to 0. It records its intent
// first, but moves traffic even when that record cannot be written: stable is always
// safe to go back to.
func (x *canaryRun) abort(reason string) error {
	ctx, cancel := context.WithTimeout(x.runCtx, x.opts.abortTimeout)
	defer cancel()
	x.cancelStep(errors.New("aborting"))
	x.rep.observe("abort", observe.Started, reason, nil)
	if x.rec.Phase != Aborting {
		x.rec.Phase, x.rec.Message = Aborting, reason
		x.decide("abort", reason)
	}
	saveErr := x.st.save(ctx, x.rec)
	if err := x.lease.guard(ctx); err != nil {
		return fmt.Errorf("abort (%s): %w", reason, err)
	}
	if err := x.spec.Router.Reset(ctx); err != nil {
		return fmt.Errorf("abort (%s): reset traffic to stable: %w", reason, errors.Join(err, saveErr))
	}
	x.rec.Weight = 0
	if err := scale(ctx, x.client, x.spec.Namespace, x.canary.Name, 0); err != nil {
		return fmt.Errorf("abort (%s): traffic is back on stable, but: %w", reason, err)
	}
	x.rec.Phase, x.rec.StepStarted = Aborted, time.Time{}
	if err := x.st.save(ctx, x.rec, keyAbort, keyPromote); err != nil {
		return fmt.Errorf("abort (%s): traffic is back on stable and the canary scaled down, but: %w", reason, err)
	}
	x.rep.observe("abort", observe.Finished, "all traffic on stable, canary scaled to 0: "+reason, nil)
	x.rep.kubeEvent(ctx, x.target, true, ReasonAborted, "Abort", reason)
	return nil
}

// promote makes the canary's template the stable one, waits for stable to roll it out,
// sends all traffic to stable and scales the canary to 0. It first makes sure that
// every analysis step of the plan passed for this revision, and that the canary
// still runs the revision that was analysed: a canary whose template changed is
// aborted, never promoted.
func (x *canaryRun) promote() error {
	ctx := x.runCtx
	ns := x.spec.Namespace
	if err := x.unanalysed(); err != nil {
		return err
	}
	if err := x.sameTemplate(nil); err != nil {
		return x.refuseChanged(err)
	}
	if x.rec.Phase != Promoting {
		x.rec.Phase, x.rec.Message = Promoting, fmt.Sprintf("all %d steps completed", len(x.spec.Steps))
		x.rec.Step = len(x.spec.Steps)
		x.decide("promote", x.rec.Message)
		if err := x.st.save(ctx, x.rec); err != nil {
			return err
		}
	}
	x.rep.observe("promote", observe.Started, x.rec.Message, nil)
	if err := x.lease.guard(ctx); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		canary, err := x.client.AppsV1().Deployments(ns).Get(ctx, x.canary.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := x.sameTemplate(canary); err != nil {
			return err
		}
		stable, err := x.client.AppsV1().Deployments(ns).Get(ctx, x.stable.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		tmpl := canary.Spec.Template.DeepCopy()
		tmpl.Labels = podLabelsFor(stable, canary.Spec.Template.Labels)
		stable.Spec.Template = *tmpl
		_, err = x.client.AppsV1().Deployments(ns).Update(ctx, stable, metav1.UpdateOptions{})
		return err
	})
	if errors.As(err, new(*TemplateChangedError)) {
		return x.refuseChanged(err)
	}
	if err != nil {
		return fmt.Errorf("promote: copy the canary's template to stable Deployment %s/%s: %w", ns, x.stable.Name, err)
	}
	if err := waitReady(ctx, x.client, ns, x.stable.Name, x.opts.readyTimeout, x.opts.poll); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if err := x.moveTraffic(func(ctx context.Context) error { return x.spec.Router.Reset(ctx) }); err != nil {
		return fmt.Errorf("promote: send all traffic to the promoted stable: %w", err)
	}
	x.rec.Weight = 0
	if err := scale(ctx, x.client, ns, x.canary.Name, 0); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	x.rec.Phase, x.rec.Message, x.rec.StepStarted = Promoted, "stable runs revision "+x.rec.Revision, time.Time{}
	if err := x.st.save(ctx, x.rec, keyPromote); err != nil {
		return err
	}
	x.rep.observe("promote", observe.Finished, x.rec.Message, nil)
	x.rep.kubeEvent(ctx, x.target, false, ReasonPromoted, "Promote", x.rec.Message)
	return nil
}

// unanalysed refuses promotion while an analysis step of the plan has not passed for
// this revision: the plan changed since the state was recorded, or the state came
// back from an earlier point.
func (x *canaryRun) unanalysed() error {
	var missing []int
	for i, s := range x.spec.Steps {
		if s.Kind == KindAnalysis && !x.rec.passed(i) {
			missing = append(missing, i+1)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &NotAnalysedError{Revision: x.rec.Revision, Steps: missing}
}

// sameTemplate refuses promotion when the canary (live, or read now when nil) runs a
// template other than the revision that was analysed.
func (x *canaryRun) sameTemplate(live *appsv1.Deployment) error {
	if live == nil {
		d, err := x.client.AppsV1().Deployments(x.spec.Namespace).Get(x.runCtx, x.canary.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("promote: get canary Deployment %s/%s: %w", x.spec.Namespace, x.canary.Name, err)
		}
		live = d
	}
	if got := revision(&live.Spec.Template); got != x.rec.Revision {
		return &TemplateChangedError{Namespace: live.Namespace, Deployment: live.Name, Analysed: x.rec.Revision, Live: got}
	}
	return nil
}

// refuseChanged aborts the rollout when err is a *TemplateChangedError (the revision
// that was analysed is no longer the canary's), and returns err.
func (x *canaryRun) refuseChanged(err error) error {
	if !errors.As(err, new(*TemplateChangedError)) {
		return err
	}
	return errors.Join(err, x.abort(err.Error()))
}
