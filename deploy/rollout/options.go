package rollout

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/shipkit/shipkit/deploy/internal/seal"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
)

// Defaults of the options.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultPollInterval  = time.Second
	DefaultReadyTimeout  = 5 * time.Minute
	DefaultAbortTimeout  = 30 * time.Second
)

// InconclusivePolicy says what a rollout does when an analysis has too little data to
// judge (metrics backend down, timing out, no data, NaN). It never promotes.
type InconclusivePolicy int

const (
	// AbortOnInconclusive sends all traffic back to stable: no human in the loop.
	AbortOnInconclusive InconclusivePolicy = iota
	// PauseOnInconclusive keeps the canary at its current weight and returns a
	// [Paused] result; the next Run repeats the analysis.
	PauseOnInconclusive
)

// ResumePolicy says what a run does when it finds a rollout that an earlier process
// left in progress (it crashed or was cancelled).
type ResumePolicy int

const (
	// Resume continues from the recorded step, re-applying the recorded weight.
	Resume ResumePolicy = iota
	// RollbackOnResume aborts the rollout: all traffic back to stable.
	RollbackOnResume
)

// Option configures a rollout. An option given a value it cannot use makes
// [NewCanary] or [NewBlueGreen] fail with an error wrapping
// [github.com/shipkit/shipkit/deploy.ErrInvalidOption] that names it.
type Option func(*options) error

type options struct {
	observer      observe.Observer
	logger        *slog.Logger
	identity      string
	leaseDuration time.Duration
	poll          time.Duration
	readyTimeout  time.Duration
	abortTimeout  time.Duration
	inconclusive  InconclusivePolicy
	resume        ResumePolicy
	kubeEvents    bool
	now           func() time.Time
	stateKey      []byte       // from WithStateKey, until newSealer takes it
	sealer        *seal.Sealer // seals the recorded state
}

// newOptions applies opts over the defaults; the error joins those of every option
// given a value it cannot use.
func newOptions(opts []Option) (options, error) {
	o := options{
		leaseDuration: DefaultLeaseDuration,
		poll:          DefaultPollInterval,
		readyTimeout:  DefaultReadyTimeout,
		abortTimeout:  DefaultAbortTimeout,
		kubeEvents:    true,
		now:           time.Now,
	}
	var errs option.List
	for _, f := range opts {
		errs.Add(f(&o))
	}
	o.observer, o.logger = observe.OrDiscard(o.observer), observe.OrDiscardLogger(o.logger)
	if o.identity == "" {
		o.identity = defaultIdentity()
	}
	return o, errs.Err("")
}

// WithObserver reports an event per step (Stage "rollout") to o, and the analysis
// events (Stage "analysis") of every check. Default (and nil): discard.
func WithObserver(o observe.Observer) Option {
	return func(c *options) error { c.observer = o; return nil }
}

// WithLogger logs decisions at info level and details at debug level to l. Default
// (and nil): discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *options) error { c.logger = l; return nil }
}

// WithIdentity names this process in the Lease and in Kubernetes Events. Default: the
// host name and a random suffix, different for each rollout value. An empty identity
// is refused.
func WithIdentity(id string) Option {
	return func(c *options) error {
		if id == "" {
			return errors.New(`WithIdentity(""): empty identity`)
		}
		c.identity = id
		return nil
	}
}

// WithLeaseDuration sets how long the rollout's Lease stays valid without renewal:
// the time another process must wait after this one crashed. Default 15s; zero or
// less is refused.
func WithLeaseDuration(d time.Duration) Option {
	return func(c *options) error { return positive(&c.leaseDuration, "WithLeaseDuration", d) }
}

// WithPollInterval sets how often the rollout looks at Deployments, Promote and Abort
// requests. Default 1s; zero or less is refused.
func WithPollInterval(d time.Duration) Option {
	return func(c *options) error { return positive(&c.poll, "WithPollInterval", d) }
}

// WithReadyTimeout bounds the wait for a Deployment to become ready; a canary that is
// not ready in time aborts the rollout. Default 5m; zero or less is refused.
func WithReadyTimeout(d time.Duration) Option {
	return func(c *options) error { return positive(&c.readyTimeout, "WithReadyTimeout", d) }
}

// positive sets *p to d, or says why option cannot take d.
func positive(p *time.Duration, option string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s(%v): must be positive", option, d)
	}
	*p = d
	return nil
}

// OnInconclusive chooses what an inconclusive analysis does. Default:
// [AbortOnInconclusive]; a value that is not one of the policies is refused.
func OnInconclusive(p InconclusivePolicy) Option {
	return func(c *options) error {
		if p != AbortOnInconclusive && p != PauseOnInconclusive {
			return fmt.Errorf("OnInconclusive(%d): not an InconclusivePolicy", p)
		}
		c.inconclusive = p
		return nil
	}
}

// OnResume chooses what a run does with a rollout left in progress. Default:
// [Resume]; a value that is not one of the policies is refused.
func OnResume(p ResumePolicy) Option {
	return func(c *options) error {
		if p != Resume && p != RollbackOnResume {
			return fmt.Errorf("OnResume(%d): not a ResumePolicy", p)
		}
		c.resume = p
		return nil
	}
}

// WithKubeEvents turns Kubernetes Events (events.k8s.io/v1, on the rolled-out
// Deployment, one per step and decision) on or off. Default on.
func WithKubeEvents(on bool) Option { return func(c *options) error { c.kubeEvents = on; return nil } }

// WithStateKey gives the key that authenticates the rollout's recorded state: every
// Status the rollout writes into its ConfigMap is sealed with an HMAC-SHA256 under
// key (over the namespace, the ConfigMap's name and the Status), and a Run trusts a
// recorded state only when its seal verifies; otherwise it moves nothing and
// returns a [*StateError]. The key must be at least 32 random bytes, the same for
// every process that runs the rollout. It is required: [NewCanary] and
// [NewBlueGreen] refuse a rollout without it (see the package documentation,
// "State in the cluster", for why there is no unauthenticated mode).
//
// Keep the key where the deployer's credentials are kept (a CI secret, a Secret in a
// namespace only the deployer reads, a KMS), never in the rollout's namespace. A
// state sealed with another key is refused: rotating the key makes a rollout in
// progress unusable until it is Retried, which starts its revision again from the
// first step. The key is never logged or printed.
func WithStateKey(key []byte) Option {
	return func(c *options) error { c.stateKey = append([]byte(nil), key...); return nil }
}

// newSealer checks the state key and keeps the sealer made of it.
func (o *options) newSealer() error {
	s, err := seal.New(o.stateKey)
	if err != nil {
		return option.Errorf("WithStateKey: %w: a rollout needs a key of at least %d random bytes to authenticate its recorded state",
			err, seal.MinKeySize)
	}
	o.sealer, o.stateKey = s, nil
	return nil
}

// defaultIdentity is the host name with a random suffix.
func defaultIdentity() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "shipkit"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	if len(host) > 50 {
		host = host[:50]
	}
	return host + "-" + hex.EncodeToString(b)
}
