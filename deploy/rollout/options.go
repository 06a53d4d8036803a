package rollout

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/shipkit/shipkit/deploy/internal/seal"
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

// Option configures a rollout.
type Option func(*options)

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

func newOptions(opts []Option) options {
	o := options{
		observer:      observe.Discard{},
		logger:        slog.New(slog.DiscardHandler),
		leaseDuration: DefaultLeaseDuration,
		poll:          DefaultPollInterval,
		readyTimeout:  DefaultReadyTimeout,
		abortTimeout:  DefaultAbortTimeout,
		kubeEvents:    true,
		now:           time.Now,
	}
	for _, f := range opts {
		f(&o)
	}
	if o.identity == "" {
		o.identity = defaultIdentity()
	}
	return o
}

// WithObserver reports an event per step (Stage "rollout") to o, and the analysis
// events (Stage "analysis") of every check.
func WithObserver(o observe.Observer) Option {
	return func(c *options) {
		if o != nil {
			c.observer = o
		}
	}
}

// WithLogger logs decisions at info level and details at debug level to l.
func WithLogger(l *slog.Logger) Option {
	return func(c *options) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithIdentity names this process in the Lease and in Kubernetes Events. Default: the
// host name and a random suffix, different for each rollout value.
func WithIdentity(id string) Option { return func(c *options) { c.identity = id } }

// WithLeaseDuration sets how long the rollout's Lease stays valid without renewal:
// the time another process must wait after this one crashed. Default 15s.
func WithLeaseDuration(d time.Duration) Option {
	return func(c *options) {
		if d > 0 {
			c.leaseDuration = d
		}
	}
}

// WithPollInterval sets how often the rollout looks at Deployments, Promote and Abort
// requests. Default 1s.
func WithPollInterval(d time.Duration) Option {
	return func(c *options) {
		if d > 0 {
			c.poll = d
		}
	}
}

// WithReadyTimeout bounds the wait for a Deployment to become ready; a canary that is
// not ready in time aborts the rollout. Default 5m.
func WithReadyTimeout(d time.Duration) Option {
	return func(c *options) {
		if d > 0 {
			c.readyTimeout = d
		}
	}
}

// OnInconclusive chooses what an inconclusive analysis does. Default:
// [AbortOnInconclusive].
func OnInconclusive(p InconclusivePolicy) Option { return func(c *options) { c.inconclusive = p } }

// OnResume chooses what a run does with a rollout left in progress. Default: [Resume].
func OnResume(p ResumePolicy) Option { return func(c *options) { c.resume = p } }

// WithKubeEvents turns Kubernetes Events (events.k8s.io/v1, on the rolled-out
// Deployment, one per step and decision) on or off. Default on.
func WithKubeEvents(on bool) Option { return func(c *options) { c.kubeEvents = on } }

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
	return func(c *options) { c.stateKey = append([]byte(nil), key...) }
}

// newSealer checks the state key and keeps the sealer made of it.
func (o *options) newSealer() error {
	s, err := seal.New(o.stateKey)
	if err != nil {
		return fmt.Errorf("WithStateKey: %w: a rollout needs a key of at least %d random bytes to authenticate its recorded state", err, seal.MinKeySize)
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
