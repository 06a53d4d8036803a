// Package rollout moves users to a new version of a workload progressively, the way
// Argo Rollouts and Flagger do, as a library a Go program or a Terraform provider
// drives: no controller, no CRDs.
//
//   - A canary ([NewCanary]) runs the new version in a Deployment of its own beside
//     the stable one ([CanaryDeployment] and [CanaryObject] make it from the new
//     release's Deployment: "<name>-canary", track=canary, no replicas, as Flagger
//     makes its "-primary"), and follows its plan of steps: [SetWeight] shifts traffic with
//     a [mesh.Router], [Pause] and [PauseUntilPromoted] wait, [Analysis] judges the
//     canary by its metrics with observe/analysis, and background checks judge it
//     throughout. Promotion copies the canary's pod template into the stable
//     Deployment, sends all traffic back to it and drains the canary; an abort sends
//     all traffic to stable and scales the canary to zero.
//   - A blue/green rollout ([NewBlueGreen]) points a preview Service at the new
//     version, judges it, promotes it by switching the active Service's selector,
//     judges it again, and keeps the old version for a rollback window.
//
// [NewCanary] and [NewBlueGreen] take the cluster's *rest.Config, as deploy/apply
// and the mesh routers do, so one configuration serves them all;
// [NewCanaryWithClient] and [NewBlueGreenWithClient] take a clientset the caller
// made. An option given a value it cannot use is refused there, with an error
// wrapping [github.com/shipkit/shipkit/deploy.ErrInvalidOption].
//
// # State in the cluster
//
// A rollout keeps its state in a ConfigMap named "<name>-rollout" ([Status]) and
// writes it before and after every action, recording the weight it is about to set
// before it sets it. A process that crashes, is cancelled or loses its API server
// leaves that state behind; the next Run resumes from the recorded step (re-applying
// the recorded weight, never more than the plan allows there) or rolls back
// ([OnResume]). A coordination.k8s.io Lease of the same name lets one process run a
// rollout at a time: another gets [ErrLocked], and a process that loses its Lease stops
// before it moves traffic again ([ErrLeaseLost]). Promote and Abort write requests into
// the ConfigMap, so any process can send them.
//
// # Authenticated state
//
// Anyone who may write ConfigMaps in the namespace can write that state, and a Run acts
// on it: where to resume, at which weight, whether analysis passed, which Service
// selector to switch back to. So every Status is sealed with an HMAC-SHA256 under the
// caller's key ([WithStateKey]) over the namespace, the ConfigMap's name and the
// Status, and a Run trusts a state only when its seal verifies; otherwise it moves
// nothing and returns a [*StateError] ([CanaryRollout.Retry] forgets such a state).
// The key is required: a state that cannot be trusted cannot be resumed (its weight,
// step and the blue/green rollback selector all come from it), and a rollout that
// silently started over instead would hide an attack, so there is no unauthenticated
// mode to fall back to.
//
// Within an authenticated state, the steps whose analysis passed for the revision are
// recorded, and a rollout is promoted only when every analysis step of its plan is
// among them ([NotAnalysedError] otherwise, nothing moves). On promotion the live
// pod template of the canary (or of the blue/green new version) must still be the
// revision that was analysed: a changed template is a [TemplateChangedError] and the
// rollout is aborted. Requests stay unauthenticated: an abort is always honoured (it
// wins over a recorded promotion), and a promote request only ends a pause, never an
// analysis. A seal does not prove freshness: someone who copied an older state of the
// same rollout can put it back, which moves the rollout back to an earlier step of the
// same revision, never past an analysis that did not pass for it. That includes
// an abort: an older sealed state from before an operator's abort (say, paused
// after every analysis passed) brings the aborted revision back, and a promote
// request then ends that pause. Where that matters, abort by changing the canary's
// template or deleting the canary (the analysed revision is then gone), not by a
// request alone.
//
// # Decisions
//
// Nothing moves until the plan, the Deployments, the Services and the router (its
// Check method, when it has one) have been checked: bad input fails with [ErrInvalid].
// Missing metrics (a backend down or timing out, no data, NaN) are inconclusive, never
// success: the rollout aborts or pauses ([OnInconclusive]) and never promotes on them.
// Run returns a [Result] with every step, its weight, timings and the measurements
// behind each decision; an abort is a result, not an error. Each step is reported to
// an [github.com/shipkit/shipkit/observe.Observer] (Stage "rollout") and as a Kubernetes Event (events.k8s.io/v1)
// on the new version's Deployment.
package rollout
