package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/observe/analysis"
)

// Canary describes a canary rollout: the stable and canary Deployments, the router
// that splits traffic between them, and the steps that move traffic to the canary.
type Canary struct {
	// Name identifies the rollout: its state lives in the ConfigMap "<Name>-rollout"
	// and its Lease is "<Name>-rollout", both in Namespace.
	Name      string
	Namespace string
	// StableSelector and CanarySelector are labels of the stable and the canary
	// Deployment (on the Deployments themselves); each must match exactly one.
	StableSelector, CanarySelector map[string]string
	// Router moves traffic between the two. If it has a Check(ctx) error method, Run
	// calls it before any traffic moves.
	Router mesh.Router
	// CanaryReplicas, when positive, is the size the canary is scaled to (and waited
	// for) before the first step that sends it traffic: for routers that split traffic
	// on a route (Gateway API, Istio). Leave it 0 with a router that sets replicas
	// itself (mesh/replicas). A canary with no replicas never gets traffic: such a
	// step fails and the rollout aborts.
	CanaryReplicas int32
	// Services, when set, must exist before any traffic moves.
	Services []string
	// Steps is the plan. Weights must increase within 0–100, and the plan must end in
	// full promotion: a last weight of 100, or a final PauseUntilPromoted.
	Steps []Step
	// Background checks run from the first step until promotion; a failure aborts the
	// rollout at once, whichever step is running.
	Background []analysis.Check
}

// CanaryRollout runs a [Canary]. Its state lives in the cluster, so any number of
// processes may hold a CanaryRollout for the same Canary: one runs it at a time (the
// others get [ErrLocked]), and any of them may Promote or Abort it.
type CanaryRollout struct {
	spec   Canary
	client kubernetes.Interface
	opts   options
}

// NewCanary checks the canary's plan and options and returns a rollout for it in
// the cluster of cfg (the *rest.Config that deploy/apply and the mesh routers take
// too). It needs [WithStateKey]. It reads nothing from the cluster:
// [CanaryRollout.Run] checks the objects before traffic moves. A plan that cannot
// run is an error wrapping [ErrInvalid]; an option given a value it cannot use wraps
// [github.com/shipkit/shipkit/deploy.ErrInvalidOption] too.
func NewCanary(cfg *rest.Config, spec Canary, opts ...Option) (*CanaryRollout, error) {
	client, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("canary %s/%s: %w", spec.Namespace, spec.Name, err)
	}
	return NewCanaryWithClient(client, spec, opts...)
}

// NewCanaryWithClient is [NewCanary] with a clientset the caller made (shared with
// other code, or a fake in tests).
func NewCanaryWithClient(client kubernetes.Interface, spec Canary, opts ...Option) (*CanaryRollout, error) {
	o, optErr := newOptions(opts)
	if err := errors.Join(spec.validate(), optErr, o.newSealer(), needClient(client)); err != nil {
		return nil, fmt.Errorf("canary %s/%s: %w: %w", spec.Namespace, spec.Name, ErrInvalid, err)
	}
	return &CanaryRollout{spec: spec, client: client, opts: o}, nil
}

func (c *Canary) validate() error {
	var errs []error
	errs = append(errs, validateName(c.Name, c.Namespace)...)
	if len(c.StableSelector) == 0 {
		errs = append(errs, errors.New("no stable selector"))
	}
	if len(c.CanarySelector) == 0 {
		errs = append(errs, errors.New("no canary selector"))
	}
	if c.CanaryReplicas < 0 {
		errs = append(errs, fmt.Errorf("canary replicas %d is negative", c.CanaryReplicas))
	}
	if c.Router == nil {
		errs = append(errs, errors.New("no router"))
	}
	if err := validateSteps(c.Steps); err != nil {
		errs = append(errs, err)
	}
	for _, s := range c.Steps {
		if s.Kind == KindAnalysis && len(s.Checks) > 0 {
			errs = append(errs, validateChecks(s.String(), s.Checks))
		}
	}
	if len(c.Background) > 0 {
		errs = append(errs, validateChecks("background analysis", c.Background))
	}
	return errors.Join(errs...)
}

// validateName checks that the rollout's name can name its ConfigMap and Lease.
func validateName(name, ns string) []error {
	var errs []error
	if name == "" {
		errs = append(errs, errors.New("no name"))
	} else if msgs := validation.IsDNS1123Subdomain(stateName(name)); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("name %q: %v", name, msgs))
	}
	if ns == "" {
		errs = append(errs, errors.New("no namespace"))
	}
	return errs
}

// validateChecks reports what makes checks impossible to run, measuring nothing.
func validateChecks(where string, checks []analysis.Check) error {
	if err := analysis.Validate(checks); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// stateName names the ConfigMap and the Lease of a rollout.
func stateName(name string) string { return name + "-rollout" }

// Promote asks the process running the rollout to go past its current pause
// (PauseUntilPromoted or Pause). The request is recorded in the cluster, so it may come
// from any process; it is consumed by the next pause when none is running.
func (r *CanaryRollout) Promote(ctx context.Context) error {
	return r.store().request(ctx, keyPromote, time.Now().UTC().Format(time.RFC3339))
}

// Abort asks the process running the rollout to send all traffic back to stable and
// scale the canary down, within one poll interval; a rollout that no process runs is
// aborted by its next Run.
func (r *CanaryRollout) Abort(ctx context.Context, reason string) error {
	if reason == "" {
		reason = "abort requested"
	}
	return r.store().request(ctx, keyAbort, reason)
}

// Status returns the state recorded in the cluster, or nil when the rollout never ran;
// a state whose seal does not verify is a [*StateError].
func (r *CanaryRollout) Status(ctx context.Context) (*Status, error) {
	rec, _, err := r.store().load(ctx)
	if err != nil {
		return nil, fmt.Errorf("canary %s/%s: %w", r.spec.Namespace, r.spec.Name, err)
	}
	return rec, nil
}

// Retry forgets that the current revision was aborted, so the next Run starts it again
// from its first step. It also forgets a state whose seal does not verify (a
// [*StateError]), whatever it says. It fails with [ErrLocked] while a process runs
// the rollout.
func (r *CanaryRollout) Retry(ctx context.Context) error {
	return retryRollout(ctx, r.client, r.spec.Namespace, r.spec.Name, r.opts)
}

func (r *CanaryRollout) store() *store {
	return &store{client: r.client, namespace: r.spec.Namespace, name: stateName(r.spec.Name), sealer: r.opts.sealer}
}

// Run runs the rollout until it is promoted, aborted or paused, and returns what it
// did. It first checks the Deployments, Services and router and takes the rollout's
// Lease; nothing moves when that fails.
//
// Run continues a rollout that an earlier process left in progress from its recorded
// step (or rolls it back, see [OnResume]), and returns at once for a revision already
// promoted or aborted. When ctx ends, the lease is lost or the API server goes away,
// Run stops where it is and returns an error with the result so far; the recorded state
// is that of the last completed action, and the next Run resumes from it.
func (r *CanaryRollout) Run(ctx context.Context) (*Result, error) {
	x := &canaryRun{runner: newRunner(r.client, &r.opts, r.spec.Namespace, r.spec.Name), r: r, spec: &r.spec}
	x.res.Strategy = strategyCanary
	res, err := x.run(ctx)
	if err != nil {
		err = fmt.Errorf("canary %s/%s: %w", r.spec.Namespace, r.spec.Name, err)
	}
	return res, err
}

// preflight finds the Deployments, checks the Services and the router, and returns the
// stable and canary Deployments.
func (r *CanaryRollout) preflight(ctx context.Context) (stable, canary *appsv1.Deployment, err error) {
	ns := r.spec.Namespace
	stable, err = findDeployment(ctx, r.client, ns, r.spec.StableSelector, "stable")
	if err != nil {
		return nil, nil, err
	}
	canary, err = findDeployment(ctx, r.client, ns, r.spec.CanarySelector, "canary")
	if err != nil {
		return nil, nil, err
	}
	if stable.Name == canary.Name {
		return nil, nil, fmt.Errorf("%w: the stable and canary selectors both select Deployment %s/%s", ErrInvalid, ns, stable.Name)
	}
	var errs []error
	if ok, err := selects(stable, canary.Spec.Template.Labels); err != nil || ok {
		errs = append(errs, cmpErr(err, fmt.Errorf("%w: the selector of stable Deployment %s selects the canary's pods", ErrInvalid, stable.Name)))
	}
	if ok, err := selects(canary, stable.Spec.Template.Labels); err != nil || ok {
		errs = append(errs, cmpErr(err, fmt.Errorf("%w: the selector of canary Deployment %s selects the stable pods", ErrInvalid, canary.Name)))
	}
	if ok, err := selects(stable, podLabelsFor(stable, canary.Spec.Template.Labels)); err == nil && !ok {
		errs = append(errs, fmt.Errorf("%w: promotion would give stable Deployment %s pods its selector does not select (it may use matchExpressions the canary's labels do not meet)", ErrInvalid, stable.Name))
	}
	errs = append(errs, checkServices(ctx, r.client, ns, r.spec.Services))
	errs = append(errs, checkRouter(ctx, r.spec.Router))
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return stable, canary, nil
}

// cmpErr returns err if it is set, else alt.
func cmpErr(err, alt error) error {
	if err != nil {
		return err
	}
	return alt
}
