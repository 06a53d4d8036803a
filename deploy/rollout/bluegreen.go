package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
)

// BlueGreen describes a blue/green rollout: the new version runs beside the active
// one, behind a preview Service, until it is promoted by switching the active Service's
// selector to it. The old version is kept for a rollback window.
type BlueGreen struct {
	// Name identifies the rollout, as [Canary.Name] does.
	Name      string
	Namespace string
	// ActiveService serves users; its selector picks the Deployment that is active.
	// PreviewService is pointed at the new version for testing before promotion.
	ActiveService, PreviewService string
	// Selector holds labels of the new version's Deployment (on the Deployment); it
	// must match exactly one. Its pods are selected by its spec.selector.matchLabels.
	Selector map[string]string
	// PrePromotion checks judge the new version behind the preview Service; a failure
	// aborts the rollout before users see it.
	PrePromotion []analysis.Check
	// PauseBeforePromotion waits for Promote after PrePromotion.
	PauseBeforePromotion bool
	// PostPromotion checks judge the new version once it is active; a failure switches
	// the active Service back.
	PostPromotion []analysis.Check
	// RollbackWindow is how long the old version keeps running after promotion, so
	// that a rollback is one selector switch away. Run waits for it (honouring Abort)
	// and then scales the old version to 0.
	RollbackWindow time.Duration
}

// The steps of a blue/green rollout, as Status.Step records them.
var blueGreenSteps = []StepKind{"Preview", "PrePromotionAnalysis", "PauseUntilPromoted", "Promote", "PostPromotionAnalysis", "RollbackWindow"}

// BlueGreenRollout runs a [BlueGreen]. Like [CanaryRollout], its state lives in the
// cluster and a Lease lets one process run it at a time.
type BlueGreenRollout struct {
	spec   BlueGreen
	client kubernetes.Interface
	opts   options
}

// NewBlueGreen checks the rollout's description and options and returns a rollout
// for it in the cluster of cfg. It needs [WithStateKey]. Like [NewCanary], it reads
// nothing from the cluster, and its errors wrap [ErrInvalid] (and
// [github.com/shipkit/shipkit/deploy.ErrInvalidOption] for an option given a value it cannot use).
func NewBlueGreen(cfg *rest.Config, spec BlueGreen, opts ...Option) (*BlueGreenRollout, error) {
	client, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("blue/green %s/%s: %w", spec.Namespace, spec.Name, err)
	}
	return NewBlueGreenWithClient(client, spec, opts...)
}

// NewBlueGreenWithClient is [NewBlueGreen] with a clientset the caller made.
func NewBlueGreenWithClient(client kubernetes.Interface, spec BlueGreen, opts ...Option) (*BlueGreenRollout, error) {
	var errs []error
	errs = append(errs, validateName(spec.Name, spec.Namespace)...)
	if spec.ActiveService == "" || spec.PreviewService == "" {
		errs = append(errs, errors.New("both an active and a preview Service are needed"))
	} else if spec.ActiveService == spec.PreviewService {
		errs = append(errs, fmt.Errorf("the active and preview Service are both %q", spec.ActiveService))
	}
	if len(spec.Selector) == 0 {
		errs = append(errs, errors.New("no selector for the new version's Deployment"))
	}
	if spec.RollbackWindow < 0 {
		errs = append(errs, fmt.Errorf("rollback window %v is negative", spec.RollbackWindow))
	}
	if len(spec.PrePromotion) > 0 {
		errs = append(errs, validateChecks("pre-promotion analysis", spec.PrePromotion))
	}
	if len(spec.PostPromotion) > 0 {
		errs = append(errs, validateChecks("post-promotion analysis", spec.PostPromotion))
	}
	o, err := newOptions(opts)
	errs = append(errs, err, o.newSealer(), needClient(client))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("blue/green %s/%s: %w: %w", spec.Namespace, spec.Name, ErrInvalid, err)
	}
	return &BlueGreenRollout{spec: spec, client: client, opts: o}, nil
}

func (r *BlueGreenRollout) store() *store {
	return &store{client: r.client, namespace: r.spec.Namespace, name: stateName(r.spec.Name), sealer: r.opts.sealer}
}

// Promote asks the process running the rollout to go past PauseBeforePromotion.
func (r *BlueGreenRollout) Promote(ctx context.Context) error {
	return r.store().request(ctx, keyPromote, time.Now().UTC().Format(time.RFC3339))
}

// Abort asks the process running the rollout to abort: before promotion the new
// version is scaled down, after it (within the rollback window) the active Service is
// switched back.
func (r *BlueGreenRollout) Abort(ctx context.Context, reason string) error {
	if reason == "" {
		reason = "abort requested"
	}
	return r.store().request(ctx, keyAbort, reason)
}

// Status returns the state recorded in the cluster, or nil when the rollout never ran;
// a state whose seal does not verify is a [*StateError].
func (r *BlueGreenRollout) Status(ctx context.Context) (*Status, error) {
	rec, _, err := r.store().load(ctx)
	if err != nil {
		return nil, fmt.Errorf("blue/green %s/%s: %w", r.spec.Namespace, r.spec.Name, err)
	}
	return rec, nil
}

// Retry forgets that the current revision was aborted, so the next Run starts it again.
// It also forgets a state whose seal does not verify (a [*StateError]).
func (r *BlueGreenRollout) Retry(ctx context.Context) error {
	return retryRollout(ctx, r.client, r.spec.Namespace, r.spec.Name, r.opts)
}

// bgRun is one call of Run or Rollback.
type bgRun struct {
	runner
	r        *BlueGreenRollout
	spec     *BlueGreen
	next     *appsv1.Deployment // the new version
	previous *appsv1.Deployment // what the active Service selected when the run began; nil once switched
	podSel   map[string]string  // the new version's pod labels, the Services' selector
}

// Run rolls the new version out: preview, pre-promotion analysis, optional pause,
// promotion by switching the active Service, post-promotion analysis and the rollback
// window, after which the old version is scaled to 0. It resumes a rollout left in
// progress, and returns at once for a revision already promoted or aborted.
func (r *BlueGreenRollout) Run(ctx context.Context) (*Result, error) {
	x := &bgRun{runner: newRunner(r.client, &r.opts, r.spec.Namespace, r.spec.Name), r: r, spec: &r.spec}
	x.res.Strategy = strategyBlueGreen
	res, err := x.run(ctx)
	if err != nil {
		err = fmt.Errorf("blue/green %s/%s: %w", r.spec.Namespace, r.spec.Name, err)
	}
	return res, err
}

// Rollback makes the old version active again: it scales it back up if the rollback
// window has passed, switches the active Service back to it and scales the new version
// down. It fails with [ErrLocked] while a process runs the rollout; ask that one with
// Abort instead.
func (r *BlueGreenRollout) Rollback(ctx context.Context, reason string) (*Result, error) {
	x := &bgRun{runner: newRunner(r.client, &r.opts, r.spec.Namespace, r.spec.Name), r: r, spec: &r.spec}
	x.res.Strategy = strategyBlueGreen
	res, err := x.rollback(ctx, reason)
	if err != nil {
		err = fmt.Errorf("blue/green %s/%s: rollback: %w", r.spec.Namespace, r.spec.Name, err)
	}
	return res, err
}

// preflight finds the new Deployment and checks both Services.
func (x *bgRun) preflight(ctx context.Context) error {
	ns := x.spec.Namespace
	next, err := findDeployment(ctx, x.client, ns, x.spec.Selector, "new")
	if err != nil {
		return err
	}
	x.next, x.target = next, next
	if next.Spec.Selector == nil || len(next.Spec.Selector.MatchLabels) == 0 || len(next.Spec.Selector.MatchExpressions) > 0 {
		return fmt.Errorf("%w: Deployment %s/%s: a blue/green Service selects pods by the Deployment's selector, which must be matchLabels only", ErrInvalid, ns, next.Name)
	}
	x.podSel = maps.Clone(next.Spec.Selector.MatchLabels)
	if err := checkServices(ctx, x.client, ns, []string{x.spec.ActiveService, x.spec.PreviewService}); err != nil {
		return err
	}
	active, err := x.client.CoreV1().Services(ns).Get(ctx, x.spec.ActiveService, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get Service %s/%s: %w", ns, x.spec.ActiveService, err)
	}
	if len(active.Spec.Selector) == 0 {
		return fmt.Errorf("%w: active Service %s/%s has no selector to switch", ErrInvalid, ns, active.Name)
	}
	if maps.Equal(active.Spec.Selector, x.podSel) {
		return nil // already switched: the record says what comes next
	}
	list, err := x.client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list Deployments in namespace %s: %w", ns, err)
	}
	for i := range list.Items {
		d := &list.Items[i]
		if d.Name != next.Name && labels.SelectorFromSet(active.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			if x.previous != nil {
				return fmt.Errorf("%w: active Service %s/%s selects the pods of Deployments %s and %s; want one", ErrInvalid, ns, active.Name, x.previous.Name, d.Name)
			}
			x.previous = d
		}
	}
	if x.previous == nil {
		return fmt.Errorf("%w: active Service %s/%s (selector %s) selects no Deployment: nothing to keep for a rollback", ErrInvalid, ns, active.Name, selectorString(active.Spec.Selector))
	}
	if labels.SelectorFromSet(x.podSel).Matches(labels.Set(x.previous.Spec.Template.Labels)) {
		return fmt.Errorf("%w: the selector of new Deployment %s (%s) also selects the pods of active Deployment %s", ErrInvalid, next.Name, selectorString(x.podSel), x.previous.Name)
	}
	return nil
}

func (x *bgRun) run(ctx context.Context) (*Result, error) {
	if err := x.preflight(ctx); err != nil {
		return nil, err
	}
	x.res.Revision = revision(&x.next.Spec.Template)
	rec, req, release, err := x.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	id := x.opts.identity
	switch {
	case rec == nil || rec.Strategy != strategyBlueGreen || rec.Revision != x.res.Revision:
		if x.previous == nil {
			return nil, fmt.Errorf("%w: active Service %s already selects the new version %s, but no rollout of revision %s is recorded",
				ErrInvalid, x.spec.ActiveService, x.next.Name, x.res.Revision)
		}
		x.rec = &Status{Strategy: strategyBlueGreen, Revision: x.res.Revision, Phase: Progressing, Holder: id}
		x.decide("start", fmt.Sprintf("revision %s in Deployment %s; active is %s", x.res.Revision, x.next.Name, x.previous.Name))
		if err := x.st.save(x.runCtx, x.rec, keyPromote, keyAbort); err != nil {
			return x.finish(err)
		}
	case rec.Phase.Done():
		x.rec = rec
		x.res.Message = fmt.Sprintf("revision %s was already %s", rec.Revision, rec.Phase)
		return x.finish(nil)
	default:
		x.rec = rec
		x.rec.Holder = id
		x.res.Resumed, x.res.ResumedAt = true, rec.Step
		x.decide("resume", fmt.Sprintf("resumed at %s", blueGreenSteps[min(rec.Step, len(blueGreenSteps)-1)]))
		if x.opts.resume == RollbackOnResume && rec.Phase != Aborting {
			return x.finish(x.abort("found the rollout in progress; OnResume(RollbackOnResume)"))
		}
		if rec.Phase == Aborting || req.Abort != "" {
			return x.finish(x.abort(cmpOr(req.Abort, rec.Message)))
		}
		x.rec.Phase = Progressing
	}
	x.spawn(x.watchRequests)
	for x.rec.Step < len(blueGreenSteps) {
		done, err := x.step(x.rec.Step)
		if err != nil || done {
			return x.finish(err)
		}
	}
	return x.finish(x.scaleDownPrevious())
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// step runs step i of the blue/green plan.
func (x *bgRun) step(i int) (done bool, err error) {
	kind := blueGreenSteps[i]
	sr := StepResult{Index: i, Step: Step{Kind: kind}, Started: time.Now()}
	name := fmt.Sprintf("step %d/%d %s", i+1, len(blueGreenSteps), kind)
	if err := x.runCtx.Err(); err != nil {
		return true, x.interrupted(&sr, name, context.Cause(x.runCtx))
	}
	if x.skip(kind) {
		x.rec.Step++
		return false, nil
	}
	x.rep.observe(name, observe.Started, "", nil)
	var consume []string
	switch kind {
	case "Preview":
		err = x.preview()
		sr.Message = fmt.Sprintf("Service %s selects %s", x.spec.PreviewService, selectorString(x.podSel))
	case "PrePromotionAnalysis", "PostPromotionAnalysis":
		checks := x.spec.PrePromotion
		if kind == "PostPromotionAnalysis" {
			checks = x.spec.PostPromotion
		}
		sr.Step = Analysis(checks...)
		sr.Step.Kind = kind
		sr.Analysis, err = x.analyse(checks)
		if err == nil {
			sr.Message = sr.Analysis.Message
		}
	case "PauseUntilPromoted":
		_, err = x.pause(-1)
		consume, sr.Message = []string{keyPromote}, "promoted"
	case "Promote":
		err = x.promote()
		sr.Message = fmt.Sprintf("Service %s selects %s", x.spec.ActiveService, selectorString(x.podSel))
	case "RollbackWindow":
		if x.rec.StepStarted.IsZero() {
			x.rec.StepStarted = time.Now().UTC()
		}
		left := time.Until(x.rec.PromotedAt.Add(x.spec.RollbackWindow))
		_, err = x.pause(max(left, 0))
		sr.Message = fmt.Sprintf("kept %s for %s", x.rec.Previous, x.spec.RollbackWindow)
	}
	sr.Finished = time.Now()
	var intr *interruption
	switch cause := context.Cause(x.stepCtx); {
	case err != nil && errors.As(cause, &intr) && x.runCtx.Err() == nil:
		sr.Phase, sr.Message = StepInterrupted, intr.reason
		x.failed(&sr, name)
		return true, x.abort(intr.reason)
	case err != nil && errors.Is(err, errNotReady):
		sr.Phase, sr.Message = StepFailed, err.Error()
		x.failed(&sr, name)
		return true, x.abort(err.Error())
	case errors.As(err, new(*TemplateChangedError)):
		sr.Phase, sr.Message = StepFailed, err.Error()
		x.failed(&sr, name)
		return true, errors.Join(err, x.abort(err.Error()))
	case err != nil:
		return true, x.interrupted(&sr, name, err)
	case sr.Analysis != nil && sr.Analysis.Phase == analysis.Failed:
		sr.Phase = StepFailed
		x.failed(&sr, name)
		return true, x.abort(fmt.Sprintf("%s failed: %s", kind, sr.Analysis.Message))
	case sr.Analysis != nil && sr.Analysis.Phase != analysis.Successful:
		sr.Phase = StepInconclusive
		x.failed(&sr, name)
		reason := fmt.Sprintf("%s inconclusive: %s", kind, sr.Analysis.Message)
		if x.opts.inconclusive == AbortOnInconclusive {
			return true, x.abort(reason)
		}
		x.rec.Phase, x.rec.Message = Paused, reason
		x.decide("pause", reason+"; the next Run repeats the step")
		return true, x.st.save(x.runCtx, x.rec)
	}
	if sr.Analysis != nil {
		x.rec.pass(i)
	}
	return false, x.completed(&sr, name, consume...)
}

// bgStep returns the index of a blue/green step.
func bgStep(kind StepKind) int { return slices.Index(blueGreenSteps, kind) }

// analysed refuses to go past step kind (promotion, or the end of the rollout) while
// the analysis step before it, when the plan has one, has not passed for this
// revision.
func (x *bgRun) analysed(analysisKind StepKind) error {
	if i := bgStep(analysisKind); !x.skip(analysisKind) && !x.rec.passed(i) {
		return &NotAnalysedError{Revision: x.rec.Revision, Steps: []int{i + 1}}
	}
	return nil
}

// sameTemplate refuses promotion when the new version's Deployment no longer runs
// the revision that was analysed.
func (x *bgRun) sameTemplate() error {
	d, err := x.client.AppsV1().Deployments(x.spec.Namespace).Get(x.runCtx, x.next.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get Deployment %s/%s: %w", x.spec.Namespace, x.next.Name, err)
	}
	if got := revision(&d.Spec.Template); got != x.rec.Revision {
		return &TemplateChangedError{Namespace: d.Namespace, Deployment: d.Name, Analysed: x.rec.Revision, Live: got}
	}
	return nil
}

// skip reports whether the plan leaves out a step of this kind.
func (x *bgRun) skip(kind StepKind) bool {
	switch kind {
	case "PrePromotionAnalysis":
		return len(x.spec.PrePromotion) == 0
	case "PostPromotionAnalysis":
		return len(x.spec.PostPromotion) == 0
	case "PauseUntilPromoted":
		return !x.spec.PauseBeforePromotion
	}
	return false
}

// preview makes sure the new version runs and points the preview Service at it.
func (x *bgRun) preview() error {
	ns := x.spec.Namespace
	if replicas(x.next) == 0 && x.previous != nil {
		if err := scale(x.runCtx, x.client, ns, x.next.Name, replicas(x.previous)); err != nil {
			return err
		}
	}
	if err := waitReady(x.stepCtx, x.client, ns, x.next.Name, x.opts.readyTimeout, x.opts.poll); err != nil {
		return err
	}
	return x.moveTraffic(func(ctx context.Context) error {
		return setSelector(ctx, x.client, ns, x.spec.PreviewService, x.podSel)
	})
}

// promote records what the active Service selects, then switches it to the new
// version, once the pre-promotion analysis passed for the revision the new version
// still runs.
func (x *bgRun) promote() error {
	if err := x.analysed("PrePromotionAnalysis"); err != nil {
		return err
	}
	if err := x.sameTemplate(); err != nil {
		return err
	}
	if x.previous != nil { // not yet switched (a resumed run may find it switched)
		active, err := x.client.CoreV1().Services(x.spec.Namespace).Get(x.runCtx, x.spec.ActiveService, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get Service %s/%s: %w", x.spec.Namespace, x.spec.ActiveService, err)
		}
		x.rec.PreviousSelector = active.Spec.Selector
		x.rec.Previous, x.rec.PreviousReplicas = x.previous.Name, replicas(x.previous)
	}
	x.rec.Phase, x.rec.PromotedAt = Promoting, time.Now().UTC()
	x.decide("promote", fmt.Sprintf("switch Service %s from %s to %s", x.spec.ActiveService, x.rec.Previous, x.next.Name))
	if err := x.st.save(x.runCtx, x.rec); err != nil {
		return err
	}
	if err := x.moveTraffic(func(ctx context.Context) error {
		return setSelector(ctx, x.client, x.spec.Namespace, x.spec.ActiveService, x.podSel)
	}); err != nil {
		return err
	}
	x.rec.Phase = Progressing
	x.rep.kubeEvent(x.runCtx, x.target, false, ReasonPromoted, "Promote",
		fmt.Sprintf("Service %s now selects %s", x.spec.ActiveService, x.next.Name))
	return nil
}

// scaleDownPrevious ends the rollout after the rollback window, once the
// post-promotion analysis passed.
func (x *bgRun) scaleDownPrevious() error {
	if err := x.analysed("PostPromotionAnalysis"); err != nil {
		return err
	}
	if x.rec.Previous != "" {
		if err := scale(x.runCtx, x.client, x.spec.Namespace, x.rec.Previous, 0); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	x.rec.Phase, x.rec.Message = Promoted, fmt.Sprintf("Service %s selects %s; %s scaled to 0", x.spec.ActiveService, x.next.Name, x.rec.Previous)
	if err := x.st.save(x.runCtx, x.rec, keyPromote); err != nil {
		return err
	}
	x.rep.kubeEvent(x.runCtx, x.target, false, ReasonPromoted, "ScaleDown", x.rec.Message)
	return nil
}

// abort switches the active Service back if it was switched (scaling the previous
// version up first if needed), and scales the new version to 0.
func (x *bgRun) abort(reason string) error {
	ctx, cancel := context.WithTimeout(x.runCtx, max(x.opts.abortTimeout, x.opts.readyTimeout))
	defer cancel()
	if x.cancelStep != nil {
		x.cancelStep(errors.New("aborting"))
	}
	ns := x.spec.Namespace
	if x.rec.Phase != Aborting {
		x.rec.Phase, x.rec.Message = Aborting, reason
		x.decide("abort", reason)
	}
	saveErr := x.st.save(ctx, x.rec)
	if err := x.lease.guard(ctx); err != nil {
		return fmt.Errorf("abort (%s): %w", reason, err)
	}
	if len(x.rec.PreviousSelector) > 0 {
		if err := scale(ctx, x.client, ns, x.rec.Previous, max(x.rec.PreviousReplicas, 1)); err != nil {
			return errors.Join(err, saveErr)
		}
		if err := waitReady(ctx, x.client, ns, x.rec.Previous, x.opts.readyTimeout, x.opts.poll); err != nil {
			return errors.Join(err, saveErr)
		}
		if err := x.lease.guard(ctx); err != nil {
			return fmt.Errorf("abort (%s): %w", reason, err)
		}
		if err := setSelector(ctx, x.client, ns, x.spec.ActiveService, x.rec.PreviousSelector); err != nil {
			return errors.Join(err, saveErr)
		}
	}
	if err := scale(ctx, x.client, ns, x.next.Name, 0); err != nil {
		return err
	}
	x.rec.Phase = Aborted
	if err := x.st.save(ctx, x.rec, keyAbort, keyPromote); err != nil {
		return err
	}
	x.rep.kubeEvent(ctx, x.target, true, ReasonAborted, "Abort", reason)
	return nil
}

// rollback aborts a rollout that no process runs, whatever its phase.
func (x *bgRun) rollback(ctx context.Context, reason string) (*Result, error) {
	ns := x.spec.Namespace
	next, err := findDeployment(ctx, x.client, ns, x.spec.Selector, "new")
	if err != nil {
		return nil, err
	}
	x.next, x.target = next, next
	rec, _, release, err := x.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if rec == nil || rec.Strategy != strategyBlueGreen {
		return nil, fmt.Errorf("%w: no blue/green rollout recorded in %s", ErrNotStarted, x.st.ref())
	}
	x.rec = rec
	x.rec.Holder = x.opts.identity
	x.res.Revision = rec.Revision
	if rec.Phase == Aborted {
		x.res.Message = "already rolled back"
		return x.finish(nil)
	}
	x.rec.Phase = Progressing // a rollback is a new decision, even of a promoted rollout
	return x.finish(x.abort(cmpOr(reason, "rollback requested")))
}

// setSelector replaces the selector of a Service.
func setSelector(ctx context.Context, c kubernetes.Interface, ns, name string, sel map[string]string) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		svc, err := c.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if maps.Equal(svc.Spec.Selector, sel) {
			return nil
		}
		svc.Spec.Selector = maps.Clone(sel)
		_, err = c.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("switch Service %s/%s to %s: %w", ns, name, selectorString(sel), err)
	}
	return nil
}
