package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ErrLocked is wrapped by the error of a run that finds another process running the
// same rollout (its Lease is held and not expired).
var ErrLocked = errors.New("rollout is run by another process")

// ErrLeaseLost is the cause of a run stopped because another process took its Lease
// or it could not renew it in time. Traffic does not move after it is lost.
var ErrLeaseLost = errors.New("rollout lease lost")

// LockedError says who holds the Lease of a rollout and until when.
type LockedError struct {
	Lease  string // namespace/name
	Holder string
	Until  time.Time
}

// Error names the Lease, its holder and when it expires.
func (e *LockedError) Error() string {
	return fmt.Sprintf("lease %s is held by %q until %s", e.Lease, e.Holder, e.Until.Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

// lease is a coordination.k8s.io/v1 Lease held by one process for one rollout.
type lease struct {
	client    kubernetes.Interface
	namespace string
	name      string
	identity  string
	duration  time.Duration
	log       *slog.Logger

	mu      sync.Mutex
	obj     *coordinationv1.Lease // as last written by us
	renewed time.Time             // local time of the last successful renewal
	lost    error                 // set once the lease is lost
}

func (l *lease) ref() string { return l.namespace + "/" + l.name }

// acquire takes the lease if it is free, expired or already ours; otherwise it returns
// a *LockedError. Expiry is judged by this machine's clock against the holder's last
// renewTime, so clocks that disagree by more than a fraction of the lease duration
// make the judgement early or late.
func (l *lease) acquire(ctx context.Context) error {
	leases := l.client.CoordinationV1().Leases(l.namespace)
	now := time.Now()
	cur, err := leases.Get(ctx, l.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		obj := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: l.name, Namespace: l.namespace, Labels: managedLabels()},
			Spec:       l.spec(now, nil),
		}
		created, err := leases.Create(ctx, obj, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return l.acquire(ctx) // someone created it meanwhile: judge theirs
		}
		if err != nil {
			return fmt.Errorf("create lease %s: %w", l.ref(), err)
		}
		l.held(created, now)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get lease %s: %w", l.ref(), err)
	}
	if h := holder(cur); h != "" && h != l.identity {
		if until := expiry(cur); until.After(now) {
			return &LockedError{Lease: l.ref(), Holder: h, Until: until}
		}
		l.log.Info("taking over expired lease", "lease", l.ref(), "holder", h)
	}
	upd := cur.DeepCopy()
	upd.Spec = l.spec(now, &cur.Spec)
	got, err := leases.Update(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return &LockedError{Lease: l.ref(), Holder: "another process (it changed the lease as this one took it)", Until: now.Add(l.duration)}
	}
	if err != nil {
		return fmt.Errorf("take lease %s: %w", l.ref(), err)
	}
	l.held(got, now)
	return nil
}

// spec returns the spec of a lease held by us from now, following prev.
func (l *lease) spec(now time.Time, prev *coordinationv1.LeaseSpec) coordinationv1.LeaseSpec {
	secs := int32(max(l.duration.Round(time.Second)/time.Second, 1))
	t := metav1.NewMicroTime(now)
	s := coordinationv1.LeaseSpec{HolderIdentity: &l.identity, LeaseDurationSeconds: &secs, AcquireTime: &t, RenewTime: &t}
	if prev != nil {
		n := int32(0)
		if prev.LeaseTransitions != nil {
			n = *prev.LeaseTransitions
		}
		if prev.HolderIdentity == nil || *prev.HolderIdentity != l.identity {
			n++
		} else if prev.AcquireTime != nil {
			s.AcquireTime = prev.AcquireTime
		}
		s.LeaseTransitions = &n
	}
	return s
}

func (l *lease) held(obj *coordinationv1.Lease, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.obj, l.renewed, l.lost = obj, at, nil
}

// renew extends the lease. It fails with ErrLeaseLost when another process changed
// the lease (took it) or when no renewal succeeded for a whole lease duration; other
// failures (API server unreachable) are returned as they are and may be retried.
func (l *lease) renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	now := time.Now()
	upd := l.obj.DeepCopy()
	upd.Spec.RenewTime = new(metav1.NewMicroTime(now))
	leases := l.client.CoordinationV1().Leases(l.namespace)
	got, err := leases.Update(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		// Our last renewal may have been written although its answer was lost: the
		// lease is still ours if it names us.
		if cur, gerr := leases.Get(ctx, l.name, metav1.GetOptions{}); gerr == nil && holder(cur) == l.identity {
			cur.Spec.RenewTime = upd.Spec.RenewTime
			got, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		}
	}
	switch {
	case err == nil:
		l.obj, l.renewed = got, now
		return nil
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		l.lost = fmt.Errorf("%w: lease %s changed by another process: %w", ErrLeaseLost, l.ref(), err)
	case now.Sub(l.renewed) >= l.duration:
		l.lost = fmt.Errorf("%w: lease %s not renewed for %s: %w", ErrLeaseLost, l.ref(), now.Sub(l.renewed).Round(time.Millisecond), err)
	default:
		return fmt.Errorf("renew lease %s: %w", l.ref(), err)
	}
	return l.lost
}

// valid reports, without asking the API server, whether the lease is still ours: not
// lost, and renewed within its duration.
func (l *lease) valid() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.lost != nil:
		return l.lost
	case time.Since(l.renewed) >= l.duration:
		return fmt.Errorf("%w: lease %s not renewed for %s", ErrLeaseLost, l.ref(), time.Since(l.renewed).Round(time.Millisecond))
	}
	return nil
}

// guard makes sure the lease is ours right before traffic moves: it renews it, and
// fails when that is not possible. Once guard succeeded, no other process can take the
// lease for a whole lease duration.
func (l *lease) guard(ctx context.Context) error {
	if err := l.renew(ctx); err != nil {
		return fmt.Errorf("before moving traffic: %w", err)
	}
	return nil
}

// keep renews the lease every third of its duration until ctx ends, and calls lost
// with the cause when it is lost.
func (l *lease) keep(ctx context.Context, lost func(error)) {
	t := time.NewTicker(max(l.duration/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := l.renew(ctx)
		if errors.Is(err, ErrLeaseLost) {
			lost(err)
			return
		}
		if err != nil && ctx.Err() == nil {
			l.log.Warn("lease renewal failed; retrying", "lease", l.ref(), "error", err)
		}
	}
}

// release gives the lease up, if still ours, so the next run need not wait for expiry.
func (l *lease) release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil || l.obj == nil {
		return
	}
	upd := l.obj.DeepCopy()
	upd.Spec.HolderIdentity = nil
	upd.Spec.RenewTime = nil
	upd.Spec.AcquireTime = nil
	if _, err := l.client.CoordinationV1().Leases(l.namespace).Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		l.log.Warn("could not release lease; it expires on its own", "lease", l.ref(), "error", err)
	}
	l.lost = fmt.Errorf("%w: released", ErrLeaseLost)
}

func holder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// expiry is when the lease's holder loses it unless it renews it.
func expiry(l *coordinationv1.Lease) time.Time {
	if l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return time.Time{}
	}
	return l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
}

// hold keeps l renewed and returns a context that ends when ctx ends or l is lost
// (its cause is then ErrLeaseLost), with a function that stops renewing and releases l.
func hold(ctx context.Context, l *lease) (context.Context, func()) {
	held, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.keep(held, cancel)
	}()
	return held, func() {
		cancel(nil)
		<-done
		rctx, cancelRelease := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancelRelease()
		l.release(rctx)
	}
}
