package apply

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/deploy"
)

// Where an ApplySet keeps its last good revision: a Secret beside the parent (a
// Secret, because the set's own Secrets are part of the revision), named after it.
const (
	// RevisionSecretSuffix makes the Secret's name: the parent's name and this.
	RevisionSecretSuffix = "-shipkit-revision"
	// RevisionDataKey is the Secret's data key that holds the objects of the last
	// apply that succeeded and became healthy, as gzipped JSON.
	RevisionDataKey = "last-good.json.gz"
	// LastGoodRevisionAnnotation on the Secret names that revision: the objects'
	// common deploy.RevisionAnnotation, or the sha256 of their JSON.
	LastGoodRevisionAnnotation = "deploy.shipkit.dev/last-good-revision"
	// revisionSecretType is the type of the Secret.
	revisionSecretType = "deploy.shipkit.dev/revision"
	// maxRevisionBytes bounds the gzipped revision, well below a ConfigMap's 1 MiB.
	maxRevisionBytes = 768 << 10
	// maxRevisionJSON bounds what a kept revision may decompress to.
	maxRevisionJSON = 64 << 20
)

// ErrNoRevision is returned by [Manager.Rollback] when the ApplySet keeps no good
// revision (nothing applied successfully yet, or the set was too large to keep).
var ErrNoRevision = errors.New("no good revision kept in the ApplySet")

// RolledBackError reports a rollout that failed and the rollback that followed.
// errors.As reaches both the rollout's error (a *[RolloutError] or *[TimeoutError])
// and the rollback's, if it failed too.
type RolledBackError struct {
	// Err is why the new revision failed.
	Err error
	// Revision names the revision rolled back to.
	Revision string
	// Changes are what the rollback did (nil if it could not start).
	Changes *deploy.ChangeSet
	// RollbackErr is the rollback's own failure, nil when the old revision is back
	// and healthy.
	RollbackErr error
}

func (e *RolledBackError) Error() string {
	if e.RollbackErr != nil {
		return fmt.Sprintf("rollout failed: %v; rollback to revision %s failed too: %v", e.Err, e.Revision, e.RollbackErr)
	}
	return fmt.Sprintf("rollout failed: %v; rolled back to revision %s (%s)", e.Err, e.Revision, summary(e.Changes))
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
// process: the revision is read from the Secret beside the ApplySet's parent. It
// returns [ErrNoRevision] when none is kept.
func (m *Manager) Rollback(ctx context.Context) (*deploy.ChangeSet, error) {
	if m.opts.ApplySet == nil {
		return nil, errors.New("apply: Rollback needs an ApplySet")
	}
	inv, err := m.openInventory(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := m.readRevision(ctx, inv); err != nil {
		return nil, err
	}
	objs, err := inv.goodObjects()
	if err != nil {
		return nil, err
	}
	st := m.step("rollback", len(objs))
	cs, err := m.apply(ctx, objs, false)
	st.end(err, "rolled back to revision "+inv.goodRevision+": "+summary(cs))
	return cs, err
}

// rollBack runs after the wait of an apply failed with cause.
func (m *Manager) rollBack(ctx context.Context, inv *inventory, cause error) error {
	rbe := &RolledBackError{Err: cause, Revision: inv.goodRevision}
	objs, err := inv.goodObjects()
	if err != nil {
		rbe.RollbackErr = err
		return rbe
	}
	m.log.WarnContext(ctx, "rollout failed, rolling back", "revision", inv.goodRevision, "err", cause)
	st := m.step("rollback", len(objs))
	rbe.Changes, rbe.RollbackErr = m.apply(ctx, objs, false)
	st.end(rbe.RollbackErr, "rolled back to revision "+inv.goodRevision+": "+summary(rbe.Changes))
	return rbe
}

var secrets = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// revisionRef names the Secret that keeps the set's last good revision.
func (s *ApplySet) revisionRef() deploy.ObjectRef {
	return deploy.ObjectRef{Kind: "Secret", Namespace: s.Namespace, Name: s.Name + RevisionSecretSuffix}
}

// readRevision reads the kept revision, if any.
func (m *Manager) readRevision(ctx context.Context, inv *inventory) error {
	ref := inv.set.revisionRef()
	var sec *unstructured.Unstructured
	err := retryTransient(ctx, func() error {
		var err error
		sec, err = m.client.Resource(secrets).Namespace(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return &ObjectError{Object: ref, Op: "read kept revision", Err: err}
	}
	if id := sec.GetLabels()[ApplySetIDLabel]; id != inv.id {
		return &ObjectError{Object: ref, Op: "read kept revision", Err: fmt.Errorf("not the revision of ApplySet %s (its id label is %q)", inv.id, id)}
	}
	inv.good, _, _ = unstructured.NestedString(sec.Object, "data", RevisionDataKey)
	inv.goodRevision = sec.GetAnnotations()[LastGoodRevisionAnnotation]
	inv.kept = inv.good
	return nil
}

// writeRevision stores the revision keep recorded, unless it is the one already kept.
func (m *Manager) writeRevision(ctx context.Context, inv *inventory) error {
	if inv.good == "" || inv.good == inv.kept {
		return nil
	}
	ref := inv.set.revisionRef()
	sec := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": revisionSecretType,
		"data": map[string]any{RevisionDataKey: inv.good},
	}}
	sec.SetName(ref.Name)
	sec.SetNamespace(ref.Namespace)
	sec.SetLabels(map[string]string{ApplySetIDLabel: inv.id})
	sec.SetAnnotations(map[string]string{LastGoodRevisionAnnotation: inv.goodRevision})
	err := retryTransient(ctx, func() error {
		_, err := m.client.Resource(secrets).Namespace(ref.Namespace).Apply(ctx, ref.Name, sec,
			metav1.ApplyOptions{FieldManager: m.opts.FieldManager, Force: true})
		return err
	})
	if err != nil {
		return &ObjectError{Object: ref, Op: "keep revision " + inv.goodRevision, Err: err}
	}
	inv.kept = inv.good
	return nil
}

// goodObjects decodes the kept revision.
func (inv *inventory) goodObjects() ([]*unstructured.Unstructured, error) {
	if inv.good == "" {
		return nil, fmt.Errorf("apply: ApplySet %s/%s: %w", inv.set.Namespace, inv.set.Name, ErrNoRevision)
	}
	fail := func(err error) error {
		return fmt.Errorf("apply: ApplySet %s/%s: read revision %s: %w", inv.set.Namespace, inv.set.Name, inv.goodRevision, err)
	}
	gz, err := base64.StdEncoding.DecodeString(inv.good)
	if err != nil {
		return nil, fail(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fail(err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxRevisionJSON+1))
	if err != nil {
		return nil, fail(err)
	}
	if len(raw) > maxRevisionJSON {
		return nil, fail(fmt.Errorf("larger than %d bytes", maxRevisionJSON))
	}
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fail(err)
	}
	out := make([]*unstructured.Unstructured, len(list))
	for i, o := range list {
		out[i] = &unstructured.Unstructured{Object: o}
	}
	return out, nil
}

// keep records objs as the last good revision, for writeRevision. A
// set too large to keep drops the revision (a rollback would otherwise go back
// further than the caller expects) and logs why.
func (inv *inventory) keep(ctx context.Context, log *slog.Logger, objs []*object) {
	list := make([]map[string]any, len(objs))
	revs := map[string]bool{}
	for i, o := range objs {
		list[i] = o.obj.Object
		revs[o.obj.GetAnnotations()[deploy.RevisionAnnotation]] = true
	}
	raw, err := json.Marshal(list)
	if err == nil {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, err = zw.Write(raw)
		if err == nil {
			err = zw.Close()
		}
		if err == nil && buf.Len() > maxRevisionBytes {
			err = fmt.Errorf("the revision takes %d bytes gzipped, more than the %d a ConfigMap can keep", buf.Len(), maxRevisionBytes)
		}
		if err == nil {
			inv.good = base64.StdEncoding.EncodeToString(buf.Bytes())
		}
	}
	if err != nil {
		log.WarnContext(ctx, "not keeping the revision for rollback", "applyset", inv.set.Name, "err", err)
		inv.good, inv.goodRevision = "", ""
		return
	}
	inv.goodRevision = ""
	if len(revs) == 1 {
		for r := range revs {
			inv.goodRevision = r
		}
	}
	if inv.goodRevision == "" {
		sum := sha256.Sum256(raw)
		inv.goodRevision = "sha256:" + hex.EncodeToString(sum[:6])
	}
}
