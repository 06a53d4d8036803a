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
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/internal/seal"
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
	// RevisionSealAnnotation on the Secret holds the seal of the revision: an
	// HMAC-SHA256 with [Options.RevisionKey] over the ApplySet's id, the parent's
	// namespace and name, the revision's name and the stored data.
	RevisionSealAnnotation = "deploy.shipkit.dev/revision-seal"
	// revisionSecretType is the type of the Secret.
	revisionSecretType = "deploy.shipkit.dev/revision"
	// revisionPurpose binds a seal to its use: a seal of anything else never verifies.
	revisionPurpose = "deploy/apply revision"
	// maxRevisionBytes bounds the gzipped revision, well below a Secret's 1 MiB.
	maxRevisionBytes = 768 << 10
	// maxRevisionJSON bounds what a kept revision may decompress to.
	maxRevisionJSON = 64 << 20
)

// MinRevisionKeySize is the shortest [Options.RevisionKey] a Manager takes, in bytes.
const MinRevisionKeySize = seal.MinKeySize

// Key is secret key material, such as [Options.RevisionKey]. It prints as
// "(redacted)" with every fmt verb and in slog, so logging the options shows no key.
type Key []byte

// String returns "(redacted)".
func (Key) String() string { return "(redacted)" }

// GoString returns "(redacted)", for %#v.
func (Key) GoString() string { return "(redacted)" }

// Format prints "(redacted)" whatever the verb.
func (Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "(redacted)") }

// LogValue returns "(redacted)" for slog.
func (Key) LogValue() slog.Value { return slog.StringValue("(redacted)") }

// ErrNoRevision is returned by [Manager.Rollback] when the ApplySet keeps no good
// revision (nothing applied successfully yet, or the set was too large to keep).
var ErrNoRevision = errors.New("no good revision kept in the ApplySet")

// ErrRevisionTampered is wrapped by a [*RevisionError] for a revision Secret whose
// seal is missing or does not verify with [Options.RevisionKey]: someone else wrote
// or edited it, it was kept by a version of shipkit that did not seal revisions, or
// it was sealed with another key (a rotated one).
var ErrRevisionTampered = errors.New("revision not sealed by this deployer's key")

// ErrRevisionOutOfScope is wrapped by a [*RevisionError] for a revision holding an
// object of a kind or namespace outside what the ApplySet's parent records.
var ErrRevisionOutOfScope = errors.New("revision holds objects outside the ApplySet's scope")

// RevisionError refuses the revision kept in Secret for a rollback. Nothing is
// applied or pruned when a rollback returns it.
type RevisionError struct {
	// Secret is the revision Secret.
	Secret deploy.ObjectRef
	// Err says why: it wraps [ErrRevisionTampered] or [ErrRevisionOutOfScope].
	Err error
}

// Error names the revision Secret and why it was refused.
func (e *RevisionError) Error() string {
	return fmt.Sprintf("rollback revision in %s refused: %v", e.Secret, e.Err)
}

// Unwrap returns the reason.
func (e *RevisionError) Unwrap() error { return e.Err }

var secrets = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// revisionRef names the Secret that keeps the set's last good revision.
func (s *ApplySet) revisionRef() deploy.ObjectRef {
	return deploy.ObjectRef{Kind: "Secret", Namespace: s.Namespace, Name: s.Name + RevisionSecretSuffix}
}

// revisionFields bind a revision's seal to its ApplySet, its parent and its name.
func (inv *inventory) revisionFields() []string {
	return []string{inv.id, inv.set.Namespace, inv.set.Name, inv.goodRevision}
}

// readRevision reads the kept revision, if any, and verifies its seal. A revision
// that fails verification is recorded in inv.revErr, for a rollback to refuse, and
// is never considered kept, so the next good revision replaces it.
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
	inv.good, _, _ = unstructured.NestedString(sec.Object, "data", RevisionDataKey)
	inv.goodRevision = sec.GetAnnotations()[LastGoodRevisionAnnotation]
	if inv.good == "" {
		return nil
	}
	m.trust(ctx, inv, sec)
	return nil
}

// trust verifies the revision read from sec: a verified one is kept as it is, one
// that fails is recorded in inv.revErr (and logged) for a rollback to refuse.
func (m *Manager) trust(ctx context.Context, inv *inventory, sec *unstructured.Unstructured) {
	if inv.revErr = m.verifyRevision(inv, sec); inv.revErr != nil {
		m.log.WarnContext(ctx, "the kept revision is not sealed by this deployer: a rollback refuses it",
			"secret", inv.set.revisionRef().String(), "err", inv.revErr)
		return
	}
	inv.kept = inv.good
}

// verifyRevision checks the seal of the revision Secret sec, before anything in it
// is decoded.
func (m *Manager) verifyRevision(inv *inventory, sec *unstructured.Unstructured) error {
	ref := inv.set.revisionRef()
	if m.sealer == nil {
		return &RevisionError{Secret: ref, Err: errNoRevisionKey}
	}
	if id := sec.GetLabels()[ApplySetIDLabel]; id != inv.id {
		return &RevisionError{Secret: ref, Err: fmt.Errorf("%w: its %s label is not the ApplySet's id %s", ErrRevisionTampered, ApplySetIDLabel, inv.id)}
	}
	err := m.sealer.Verify(revisionPurpose, inv.revisionFields(), []byte(inv.good), sec.GetAnnotations()[RevisionSealAnnotation])
	switch {
	case errors.Is(err, seal.ErrNoSeal):
		return &RevisionError{Secret: ref, Err: fmt.Errorf("%w: the Secret has no seal (it was kept by a version of shipkit that did not seal revisions, "+
			"or written by someone else); apply once more with Options.RevisionKey set to keep a sealed revision", ErrRevisionTampered)}
	case err != nil:
		return &RevisionError{Secret: ref, Err: fmt.Errorf("%w: its seal does not verify with Options.RevisionKey (someone else wrote or edited it, "+
			"or it was sealed with a key since rotated; apply once more to keep a revision sealed with the current key)", ErrRevisionTampered)}
	}
	return nil
}

// errNoRevisionKey is returned where a revision is needed and no key was given.
var errNoRevisionKey = fmt.Errorf("apply: rollback needs Options.RevisionKey (at least %d bytes), the key the revision was sealed with", MinRevisionKeySize)

// writeRevision stores and seals the revision keep recorded, unless it is the one
// already kept.
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
	sec.SetAnnotations(map[string]string{
		LastGoodRevisionAnnotation: inv.goodRevision,
		RevisionSealAnnotation:     m.sealer.Seal(revisionPurpose, inv.revisionFields(), []byte(inv.good)),
	})
	err := retryTransient(ctx, func() error {
		_, err := m.client.Resource(secrets).Namespace(ref.Namespace).Apply(ctx, ref.Name, sec,
			metav1.ApplyOptions{FieldManager: m.opts.FieldManager, Force: true})
		return err
	})
	if err != nil {
		return &ObjectError{Object: ref, Op: "keep revision " + inv.goodRevision, Err: err}
	}
	inv.kept, inv.revErr = inv.good, nil
	return nil
}

// goodObjects returns the objects of the kept revision once its seal has verified
// and every object is within the ApplySet's recorded scope.
func (inv *inventory) goodObjects() ([]*unstructured.Unstructured, error) {
	if inv.good == "" {
		return nil, fmt.Errorf("apply: ApplySet %s/%s: %w", inv.set.Namespace, inv.set.Name, ErrNoRevision)
	}
	if inv.revErr != nil {
		return nil, inv.revErr
	}
	objs, err := decodeRevision(inv.good)
	if err != nil {
		return nil, fmt.Errorf("apply: ApplySet %s/%s: read revision %s: %w", inv.set.Namespace, inv.set.Name, inv.goodRevision, err)
	}
	if err := inv.inScope(objs); err != nil {
		return nil, &RevisionError{Secret: inv.set.revisionRef(), Err: err}
	}
	return objs, nil
}

// decodeRevision decodes base64 of gzipped JSON, bounded by maxRevisionJSON.
func decodeRevision(good string) ([]*unstructured.Unstructured, error) {
	gz, err := base64.StdEncoding.DecodeString(good)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, maxRevisionJSON+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxRevisionJSON {
		return nil, fmt.Errorf("larger than %d bytes", maxRevisionJSON)
	}
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	out := make([]*unstructured.Unstructured, len(list))
	for i, o := range list {
		out[i] = &unstructured.Unstructured{Object: o}
	}
	return out, nil
}

// inScope refuses objects whose kind the parent does not record, or whose namespace
// is neither the parent's nor one the parent records. A kept revision holds its
// objects as they were applied: a cluster-scoped object has no namespace.
func (inv *inventory) inScope(objs []*unstructured.Unstructured) error {
	var bad []string
	for _, o := range objs {
		ref := deploy.RefOf(o)
		gk := schema.GroupKind{Group: ref.Group, Kind: ref.Kind}
		switch {
		case !inv.kinds[gk]:
			bad = append(bad, ref.String()+" (kind "+gk.String()+" not recorded)")
		case ref.Namespace != "" && ref.Namespace != inv.set.Namespace && !inv.namespaces[ref.Namespace]:
			bad = append(bad, ref.String()+" (namespace not recorded)")
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("%w: %s", ErrRevisionOutOfScope, strings.Join(bad, ", "))
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
			err = fmt.Errorf("the revision takes %d bytes gzipped, more than the %d a Secret can keep", buf.Len(), maxRevisionBytes)
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
