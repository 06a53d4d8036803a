package apply

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
)

// RolledBackError reports a rollout that failed and the rollback that followed.
// errors.As reaches both the rollout's error (a *[RolloutError] or *[TimeoutError])
// and the rollback's, if it failed too.
type RolledBackError struct {
	// Err is why the new revision failed.
	Err error
	// Revision names the revision rolled back to; empty when the kept revision was
	// refused (its name is not trusted then).
	Revision string
	// Changes are what the rollback did (nil if it could not start).
	Changes *deploy.ChangeSet
	// RollbackErr is the rollback's own failure, nil when the old revision is back
	// and healthy.
	RollbackErr error
}

// Error says why the rollout failed and whether the rollback to the kept revision worked.
func (e *RolledBackError) Error() string {
	switch {
	case e.RollbackErr != nil && e.Revision == "":
		return fmt.Sprintf("rollout failed: %v; no rollback: %v", e.Err, e.RollbackErr)
	case e.RollbackErr != nil:
		return fmt.Sprintf("rollout failed: %v; rollback to revision %s failed too: %v", e.Err, e.Revision, e.RollbackErr)
	}
	return fmt.Sprintf("rollout failed: %v; rolled back to revision %s (%s)", e.Err, e.Revision, e.Changes.Summary())
}

// Unwrap returns the rollout's error and the rollback's.
func (e *RolledBackError) Unwrap() []error {
	if e.RollbackErr != nil {
		return []error{e.Err, e.RollbackErr}
	}
	return []error{e.Err}
}

// isRolloutFailure tells a failed wait (a rollout that failed or did not finish in
// time) from other errors.
func isRolloutFailure(err error) bool {
	var re *RolloutError
	var te *TimeoutError
	return errors.As(err, &re) || errors.As(err, &te)
}

// Rollback re-applies the last good revision the ApplySet keeps (see
// [Options.Rollback]) with the manager's options: it waits with Wait and prunes
// with Prune, so objects the failed revision added go away. It works from a new
// process: the revision is read from the Secret beside the ApplySet's parent, and
// trusted only when its seal verifies with [Options.RevisionKey], which Rollback
// needs. It returns [ErrNoRevision] when none is kept, and a [*RevisionError] (with
// nothing applied or pruned) for a revision that is not sealed by the key or holds
// objects outside the ApplySet's recorded scope; [Options.Gate], when set, judges
// the revision's objects first, and a denial fails with the decision's error
// (deploy.Decision.Err).
func (m *Manager) Rollback(ctx context.Context) (*deploy.ChangeSet, error) {
	if m.opts.ApplySet == nil {
		return nil, errors.New("apply: Rollback needs an ApplySet")
	}
	if m.sealer == nil {
		return nil, errNoRevisionKey
	}
	inv, err := m.openInventory(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := m.readRevision(ctx, inv); err != nil {
		return nil, err
	}
	objs, err := m.trustedRevision(ctx, inv)
	if err != nil {
		return nil, err
	}
	st := m.step("rollback", len(objs))
	cs, err := m.apply(ctx, objs, false)
	st.End(err, "rolled back to revision "+inv.goodRevision+": "+cs.Summary())
	return cs, err
}

// rollBack runs after the wait of an apply failed with cause.
func (m *Manager) rollBack(ctx context.Context, inv *inventory, cause error) error {
	rbe := &RolledBackError{Err: cause}
	objs, err := m.trustedRevision(ctx, inv)
	if err != nil {
		rbe.RollbackErr = err
		return rbe
	}
	rbe.Revision = inv.goodRevision
	m.log.WarnContext(ctx, "rollout failed, rolling back", "revision", inv.goodRevision, "err", cause)
	st := m.step("rollback", len(objs))
	rbe.Changes, rbe.RollbackErr = m.apply(ctx, objs, false)
	st.End(rbe.RollbackErr, "rolled back to revision "+inv.goodRevision+": "+rbe.Changes.Summary())
	return rbe
}

// trustedRevision returns the objects of the kept revision once its seal verified,
// they are within the ApplySet's scope and the caller's gate, if any, allows them.
func (m *Manager) trustedRevision(ctx context.Context, inv *inventory) ([]*unstructured.Unstructured, error) {
	objs, err := inv.goodObjects()
	if err != nil {
		return nil, err
	}
	if m.opts.Gate == nil {
		return objs, nil
	}
	d, err := m.opts.Gate.Check(ctx, objs)
	if err != nil {
		return nil, fmt.Errorf("apply: gate the revision %s to roll back to: %w", inv.goodRevision, err)
	}
	if err := d.Err(); err != nil {
		return nil, fmt.Errorf("apply: the gate refuses the revision %s to roll back to: %w", inv.goodRevision, err)
	}
	return objs, nil
}
