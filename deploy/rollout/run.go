package rollout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/observe/analysis"
)

const (
	strategyCanary    = "canary"
	strategyBlueGreen = "blueGreen"
)

// runner holds what every kind of rollout run needs: the lease, the recorded state,
// the result being built and the contexts that stop it.
type runner struct {
	client    kubernetes.Interface
	opts      *options
	namespace string
	name      string
	rep       *reporter
	lease     *lease
	st        *store
	rec       *Status
	res       *Result
	// target is the Deployment the Kubernetes Events are about: the new version.
	target *appsv1.Deployment

	// runCtx ends when the caller's context ends or the lease is lost: nothing moves
	// after that. stepCtx also ends when an abort is requested or background analysis
	// fails: the step stops and the run aborts.
	runCtx     context.Context
	stepCtx    context.Context
	cancelStep context.CancelCauseFunc
	promoted   chan struct{}
	// workers are the goroutines spawned on stepCtx (request watching, background
	// analysis); stop waits for them, so none reports after Run returns.
	workers sync.WaitGroup

	mu         sync.Mutex // guards background
	background []analysis.Measurement
}

// interruption is why a step was stopped from outside: its run must abort (or pause).
type interruption struct {
	reason string
	phase  analysis.Phase // Failed or Inconclusive for background analysis, "" for a request
}

func (i *interruption) Error() string { return i.reason }

func newRunner(client kubernetes.Interface, opts *options, namespace, name string) runner {
	return runner{
		client: client, opts: opts, namespace: namespace, name: name,
		rep: &reporter{client: client, kube: opts.kubeEvents, identity: opts.identity, observer: opts.observer, log: opts.logger},
		st:  &store{client: client, namespace: namespace, name: stateName(name), sealer: opts.sealer},
		res: &Result{Name: name, Started: time.Now()},
	}
}

// begin takes the lease and reads the recorded state. The returned function stops
// renewing the lease and releases it.
func (x *runner) begin(ctx context.Context) (*Status, requests, func(), error) {
	release, err := x.hold(ctx)
	if err != nil {
		return nil, requests{}, nil, err
	}
	rec, req, err := x.st.load(x.runCtx)
	if err != nil {
		release()
		return nil, requests{}, nil, err
	}
	return rec, req, release, nil
}

// hold takes the lease and keeps renewing it until the returned function is called.
func (x *runner) hold(ctx context.Context) (func(), error) {
	x.lease = &lease{client: x.client, namespace: x.namespace, name: stateName(x.name),
		identity: x.opts.identity, duration: x.opts.leaseDuration, log: x.opts.logger}
	if err := x.lease.acquire(ctx); err != nil {
		return nil, err
	}
	x.st.held = x.lease.valid
	runCtx, release := hold(ctx, x.lease)
	x.runCtx = runCtx
	x.stepCtx, x.cancelStep = context.WithCancelCause(runCtx)
	x.promoted = make(chan struct{}, 1)
	return func() { x.stop(); release() }, nil
}

// spawn runs f in a goroutine that [runner.stop] waits for. f must return once
// stepCtx ends.
func (x *runner) spawn(f func()) { x.workers.Go(f) }

// stop ends the step context and waits for the goroutines spawned on it, so that
// none reports to the caller's observer, or measures, after the run is over. It may
// be called more than once.
func (x *runner) stop() {
	if x.cancelStep != nil {
		x.cancelStep(nil)
	}
	x.workers.Wait()
}

// moveTraffic calls f after making sure the lease is still ours.
func (x *runner) moveTraffic(f func(context.Context) error) error {
	if err := x.runCtx.Err(); err != nil {
		return context.Cause(x.runCtx)
	}
	if err := x.lease.guard(x.runCtx); err != nil {
		return err
	}
	return f(x.runCtx)
}

// failed adds a step that did not complete to the result and the recorded history,
// and reports it.
func (x *runner) failed(sr *StepResult, name string) {
	if sr.Finished.IsZero() {
		sr.Finished = time.Now()
	}
	x.rec.addStep(*sr)
	x.res.Steps = append(x.res.Steps, *sr)
	x.rep.observe(name, observe.Failed, sr.Message, fmt.Errorf("%s: %s", sr.Phase, sr.Message))
	x.rep.kubeEvent(x.runCtx, x.target, true, ReasonStepFailed, string(sr.Step.Kind), fmt.Sprintf("%s %s: %s", name, sr.Phase, sr.Message))
}

// completed records a step that did what it says and moves the record past it.
func (x *runner) completed(sr *StepResult, name string, consume ...string) error {
	sr.Phase = StepCompleted
	if sr.Finished.IsZero() {
		sr.Finished = time.Now()
	}
	x.rec.Step, x.rec.StepStarted = sr.Index+1, time.Time{}
	x.rec.addStep(*sr)
	x.res.Steps = append(x.res.Steps, *sr)
	if err := x.st.save(x.runCtx, x.rec, consume...); err != nil {
		return err
	}
	x.rep.observe(name, observe.Finished, sr.Message, nil)
	x.rep.kubeEvent(x.runCtx, x.target, false, ReasonStepCompleted, string(sr.Step.Kind), name+": "+sr.Message)
	return nil
}

// interrupted ends the run at a step it could not finish (context cancelled, lease
// lost, API server gone). The recorded state is left as it was: the next run resumes.
func (x *runner) interrupted(sr *StepResult, name string, err error) error {
	sr.Phase, sr.Message, sr.Finished = StepInterrupted, err.Error(), time.Now()
	x.res.Steps = append(x.res.Steps, *sr)
	x.rep.observe(name, observe.Failed, "interrupted; the next run resumes here", err)
	return fmt.Errorf("step %d (%s): %w", sr.Index+1, sr.Step, err)
}

// pause waits for d (forever when d < 0) or a promote request. It reports whether a
// request ended it.
func (x *runner) pause(d time.Duration) (promoted bool, err error) {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return false, nil
	case <-x.promoted:
		return true, nil
	case <-x.stepCtx.Done():
		return false, context.Cause(x.stepCtx)
	}
}

// analyse runs checks within the step, reporting to the caller's observer.
func (x *runner) analyse(checks []analysis.Check) (*analysis.Result, error) {
	return analysis.Run(x.stepCtx, checks, analysis.WithObserver(x.opts.observer), analysis.WithLogger(x.opts.logger))
}

// decide records a decision in the state and the result.
func (x *runner) decide(action, reason string) {
	d := Decision{Action: action, Reason: reason, Time: time.Now()}
	x.rec.addDecision(d)
	x.res.Decisions = append(x.res.Decisions, d)
	x.opts.logger.Info("rollout "+action, "rollout", x.namespace+"/"+x.name, "reason", reason)
}

// finish stops the run's goroutines (their last measurements are kept) and fills
// the result from the record.
func (x *runner) finish(err error) (*Result, error) {
	x.stop()
	if x.rec != nil {
		x.res.Phase, x.res.Weight = x.rec.Phase, x.rec.Weight
		if x.res.Message == "" {
			x.res.Message = x.rec.Message
		}
	}
	x.mu.Lock()
	x.res.Background = x.background
	x.mu.Unlock()
	x.res.Finished = time.Now()
	return x.res, err
}

// watchRequests polls the state for promote and abort requests from other processes
// until the step context ends: an abort request ends it.
func (x *runner) watchRequests() {
	t := time.NewTicker(x.opts.poll)
	defer t.Stop()
	st := &store{client: x.client, namespace: x.namespace, name: stateName(x.name)} // not shared with the saves
	for {
		select {
		case <-x.stepCtx.Done():
			return
		case <-t.C:
		}
		_, req, err := st.read(x.stepCtx) // requests only: an abort is honoured whatever the state holds
		if err != nil {
			continue
		}
		if req.Abort != "" {
			x.cancelStep(&interruption{reason: req.Abort})
			return
		}
		if req.Promote {
			select {
			case x.promoted <- struct{}{}:
			default:
			}
		}
	}
}

// runBackground runs checks round after round until the step context ends, and ends
// it when a round fails or is inconclusive.
func (x *runner) runBackground(checks []analysis.Check) {
	for x.stepCtx.Err() == nil {
		res, err := x.analyse(checks)
		if res != nil {
			x.mu.Lock()
			x.background = append(x.background, res.Measurements...)
			x.mu.Unlock()
		}
		if err != nil || x.stepCtx.Err() != nil {
			return
		}
		if res.Phase != analysis.Successful {
			x.cancelStep(&interruption{reason: "background analysis " + string(res.Phase) + ": " + res.Message, phase: res.Phase})
			return
		}
	}
}

// retryRollout forgets the recorded state of a rollout that no process runs, so the
// next Run starts its revision again from the first step.
func retryRollout(ctx context.Context, client kubernetes.Interface, namespace, name string, opts options) error {
	x := newRunner(client, &opts, namespace, name)
	release, err := x.hold(ctx)
	if err != nil {
		return fmt.Errorf("retry %s/%s: %w", namespace, name, err)
	}
	defer release()
	rec, _, err := x.st.load(x.runCtx)
	var bad *StateError
	switch {
	case errors.As(err, &bad):
		// A state that does not verify says nothing; forgetting it is always safe.
		x.opts.logger.Warn("forgetting a rollout state that does not verify", "rollout", namespace+"/"+name, "err", err)
	case err != nil:
		return fmt.Errorf("retry %s/%s: %w", namespace, name, err)
	}
	if rec != nil && !rec.Phase.Done() {
		return fmt.Errorf("retry %s/%s: the rollout is %s at step %d, not done: Run resumes it", namespace, name, rec.Phase, rec.Step+1)
	}
	if rec == nil && bad == nil {
		return nil
	}
	err = client.CoreV1().ConfigMaps(namespace).Delete(x.runCtx, stateName(name), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("retry %s/%s: delete %s: %w", namespace, name, x.st.ref(), err)
	}
	return nil
}
