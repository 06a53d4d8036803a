package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/shipkit/shipkit/deploy/internal/seal"
)

// The keys of the state ConfigMap.
const (
	keyState   = "state"   // the Status, JSON
	keySeal    = "seal"    // the seal of the Status (see WithStateKey)
	keyPromote = "promote" // a request to go past the current pause, RFC 3339 time
	keyAbort   = "abort"   // a request to abort, with its reason
)

// statePurpose binds a seal to its use: a seal of anything else never verifies.
const statePurpose = "deploy/rollout state"

// maxHistory bounds the steps and decisions a Status keeps.
const maxHistory = 100

// Status is the state of a rollout as recorded in its ConfigMap (key "state", JSON),
// written before and after each action so that another process can resume it. Intent
// is written before traffic moves: Weight is the weight being set, so a resumed run
// never sets more than the plan allowed at the recorded step.
type Status struct {
	// Strategy is "canary" or "blueGreen".
	Strategy string `json:"strategy"`
	// Revision identifies the version being rolled out (see [Result.Revision]).
	Revision string `json:"revision"`
	// Phase is where the rollout is.
	Phase Phase `json:"phase"`
	// Step is the index of the step being run; len(steps) once all have run.
	Step int `json:"step"`
	// Weight is the canary weight set (or being set) at Step.
	Weight int32 `json:"weight"`
	// StepStarted is when Step began; a resumed Pause waits only for the rest.
	StepStarted time.Time `json:"stepStarted,omitzero"`
	// Message explains the phase.
	Message string `json:"message,omitempty"`
	// Holder is the identity of the process that wrote the Status.
	Holder string `json:"holder"`
	// Updated is when the Status was written.
	Updated time.Time `json:"updated"`
	// Steps and Decisions are the history, newest last, at most maxHistory each.
	Steps     []StepRecord `json:"steps,omitempty"`
	Decisions []Decision   `json:"decisions,omitempty"`
	// Passed lists the steps (by index) whose analysis passed for Revision. A rollout
	// is promoted only when every analysis step of its plan is in it.
	Passed []int `json:"passed,omitempty"`

	// Blue/green: what the active Service selected before promotion, the Deployment it
	// selected and its replicas, and when promotion switched the Service.
	PreviousSelector map[string]string `json:"previousSelector,omitempty"`
	Previous         string            `json:"previous,omitempty"`
	PreviousReplicas int32             `json:"previousReplicas,omitempty"`
	PromotedAt       time.Time         `json:"promotedAt,omitzero"`
}

// StepRecord is the short form of a [StepResult] kept in the cluster.
type StepRecord struct {
	// Index, Step (its String form), Weight, Phase and Message are those of the StepResult.
	Index   int       `json:"index"`
	Step    string    `json:"step"`
	Weight  int32     `json:"weight"`
	Phase   StepPhase `json:"phase"`
	Message string    `json:"message,omitempty"`
	// Started and Finished time the step.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
}

func (r *Status) addStep(s StepResult) {
	r.Steps = append(r.Steps, StepRecord{Index: s.Index, Step: s.Step.String(), Weight: s.Weight,
		Phase: s.Phase, Message: s.Message, Started: s.Started, Finished: s.Finished})
	if n := len(r.Steps); n > maxHistory {
		r.Steps = r.Steps[n-maxHistory:]
	}
}

// pass records that the analysis of step i passed.
func (r *Status) pass(i int) {
	if !r.passed(i) {
		r.Passed = append(r.Passed, i)
	}
}

// passed reports whether the analysis of step i passed.
func (r *Status) passed(i int) bool { return slices.Contains(r.Passed, i) }

func (r *Status) addDecision(d Decision) {
	r.Decisions = append(r.Decisions, d)
	if n := len(r.Decisions); n > maxHistory {
		r.Decisions = r.Decisions[n-maxHistory:]
	}
}

// requests are what other processes asked of a running rollout.
type requests struct {
	Promote bool
	Abort   string // reason; empty when no abort was asked
}

// ErrStateTampered is wrapped by a [*StateError] for a recorded state whose seal is
// missing or does not verify with the key of [WithStateKey]: someone else wrote or
// edited it, it was written by a version of shipkit that did not seal the state, or
// it was sealed with another key.
var ErrStateTampered = errors.New("rollout state not sealed by this deployer's key")

// StateError refuses the state recorded in a rollout's ConfigMap. Run returns it
// before anything moves; [CanaryRollout.Retry] (or deleting the ConfigMap) forgets
// the state, so the next Run starts the revision again from its first step.
type StateError struct {
	// Namespace and Name name the state ConfigMap.
	Namespace, Name string
	// Err says why; it wraps [ErrStateTampered].
	Err error
}

// Error names the state ConfigMap and why its state was refused.
func (e *StateError) Error() string {
	return fmt.Sprintf("rollout state in ConfigMap/%s/%s refused: %v", e.Namespace, e.Name, e.Err)
}

// Unwrap returns the reason.
func (e *StateError) Unwrap() error { return e.Err }

// store keeps a rollout's Status in a ConfigMap of its own, sealed.
type store struct {
	client    kubernetes.Interface
	namespace string
	name      string
	// sealer seals what save writes and verifies what load reads; nil only for
	// ReadStatus, which shows the state without trusting it.
	sealer *seal.Sealer
	cm     *corev1.ConfigMap // last read or written; nil when none exists
	// held, when set, says whether this process may still write (its lease is valid).
	held func() error
}

func (s *store) ref() string { return "ConfigMap/" + s.namespace + "/" + s.name }

// sealFields bind a seal to the rollout's ConfigMap.
func (s *store) sealFields() []string { return []string{s.namespace, s.name} }

// read reads the ConfigMap (nil when there is none) and the pending requests, which
// are not sealed: anyone who may write the ConfigMap may ask for an abort or for a
// pause to end.
func (s *store) read(ctx context.Context) (*corev1.ConfigMap, requests, error) {
	cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, requests{}, nil
	}
	if err != nil {
		return nil, requests{}, fmt.Errorf("read rollout state %s: %w", s.ref(), err)
	}
	req := requests{Abort: cm.Data[keyAbort]}
	_, req.Promote = cm.Data[keyPromote]
	if _, ok := cm.Data[keyAbort]; ok && req.Abort == "" {
		req.Abort = "abort requested"
	}
	return cm, req, nil
}

// load reads the Status (nil when there is none) and the pending requests. The
// Status is verified against its seal before it is decoded: a state that does not
// verify is a *StateError (the requests are returned all the same).
func (s *store) load(ctx context.Context) (*Status, requests, error) {
	cm, req, err := s.read(ctx)
	if err != nil {
		return nil, req, err
	}
	s.cm = cm
	if cm == nil {
		return nil, req, nil
	}
	raw, ok := cm.Data[keyState]
	if !ok {
		return nil, req, nil
	}
	if s.sealer != nil {
		if err := s.verify(raw, cm.Data[keySeal]); err != nil {
			return nil, req, err
		}
	}
	var r Status
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return nil, req, fmt.Errorf("rollout state %s: key %q is not a rollout Status: %w", s.ref(), keyState, err)
	}
	return &r, req, nil
}

// verify checks the seal of the recorded state raw.
func (s *store) verify(raw, sealed string) error {
	err := s.sealer.Verify(statePurpose, s.sealFields(), []byte(raw), sealed)
	switch {
	case errors.Is(err, seal.ErrNoSeal):
		return &StateError{Namespace: s.namespace, Name: s.name, Err: fmt.Errorf("%w: the state has no seal (written by a version of shipkit "+
			"that did not seal it, or by someone else); Retry the rollout (or delete the ConfigMap) to start the revision again", ErrStateTampered)}
	case err != nil:
		return &StateError{Namespace: s.namespace, Name: s.name, Err: fmt.Errorf("%w: its seal does not verify with the state key "+
			"(someone else wrote or edited it, or it was sealed with a key since rotated); Retry the rollout (or delete the ConfigMap) "+
			"to start the revision again", ErrStateTampered)}
	}
	return nil
}

// save writes rec, and removes the request keys in consume (requests it acted on). A
// conflict with a request written meanwhile by another process is resolved by keeping
// that request and writing rec again; transient API errors are retried briefly.
func (s *store) save(ctx context.Context, rec *Status, consume ...string) error {
	if s.held != nil {
		if err := s.held(); err != nil {
			return fmt.Errorf("write rollout state %s: %w", s.ref(), err)
		}
	}
	rec.Updated = time.Now().UTC()
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode rollout state: %w", err)
	}
	sealed := s.sealer.Seal(statePurpose, s.sealFields(), raw)
	write := func() error {
		if s.cm == nil {
			cm := &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace, Labels: managedLabels()},
				Data:       map[string]string{keyState: string(raw), keySeal: sealed},
			}
			got, err := s.client.CoreV1().ConfigMaps(s.namespace).Create(ctx, cm, metav1.CreateOptions{})
			if err == nil {
				s.cm = got
			}
			return err
		}
		cm := s.cm.DeepCopy()
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[keyState], cm.Data[keySeal] = string(raw), sealed
		for _, k := range consume {
			delete(cm.Data, k)
		}
		got, err := s.client.CoreV1().ConfigMaps(s.namespace).Update(ctx, cm, metav1.UpdateOptions{})
		if err == nil {
			s.cm = got
		}
		return err
	}
	var takenBy string
	var loadErr error
	err = retry.OnError(retry.DefaultBackoff, func(err error) bool {
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			// Someone wrote a request (or our own write landed without its answer):
			// read again and write on top, unless another process now runs the rollout.
			cur, _, lerr := s.load(ctx)
			if lerr != nil {
				loadErr = lerr // a state that no longer verifies stops the run
				return false
			}
			if cur != nil && cur.Holder != rec.Holder {
				takenBy = cur.Holder
				return false
			}
			return true
		}
		return transient(err) && ctx.Err() == nil
	}, write)
	if takenBy != "" {
		return fmt.Errorf("write rollout state %s: %w: %q wrote it meanwhile", s.ref(), ErrLeaseLost, takenBy)
	}
	if loadErr != nil {
		return fmt.Errorf("write rollout state %s: %w", s.ref(), loadErr)
	}
	if err != nil {
		return fmt.Errorf("write rollout state %s (step %d, %s): %w", s.ref(), rec.Step, rec.Phase, err)
	}
	return nil
}

// request writes a request key for the process running the rollout.
func (s *store) request(ctx context.Context, key, value string) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cm, err := s.client.CoreV1().ConfigMaps(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if _, ok := cm.Data[keyState]; !ok {
			return errNoState
		}
		cm.Data[key] = value
		_, err = s.client.CoreV1().ConfigMaps(s.namespace).Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if apierrors.IsNotFound(err) || errors.Is(err, errNoState) {
		return fmt.Errorf("%s: no rollout recorded in %s: %w", key, s.ref(), ErrNotStarted)
	}
	if err != nil {
		return fmt.Errorf("%s: write request to %s: %w", key, s.ref(), err)
	}
	return nil
}

var errNoState = errors.New("no state")

// ErrNotStarted is wrapped by the errors of Promote and Abort for a rollout that has
// no recorded state.
var ErrNotStarted = errors.New("rollout not started")

// ReadStatus returns the recorded state of the rollout called name in namespace, or
// nil when it never ran: what a CLI or a Terraform provider shows without running it.
// It does not verify the state's seal (it has no key): anyone who may write the
// ConfigMap may have written what it returns. [CanaryRollout.Status] and
// [BlueGreenRollout.Status] verify it.
func ReadStatus(ctx context.Context, client kubernetes.Interface, namespace, name string) (*Status, error) {
	rec, _, err := (&store{client: client, namespace: namespace, name: stateName(name)}).load(ctx)
	if err != nil {
		return nil, fmt.Errorf("rollout %s/%s: %w", namespace, name, err)
	}
	return rec, nil
}
