package apply

import (
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/deploy"
)

// ConflictError reports fields of an object that other field managers own, which an
// apply without [Options.Force] does not take over.
type ConflictError struct {
	Object    deploy.ObjectRef
	Conflicts []deploy.Conflict
	Err       error // the API server's error
}

// Error names the object, the conflicting fields and their managers, and how to take them over.
func (e *ConflictError) Error() string {
	parts := make([]string, len(e.Conflicts))
	for i, c := range e.Conflicts {
		parts[i] = c.String()
	}
	return fmt.Sprintf("%s: %d field(s) owned by other managers: %s (apply with Force to take them over)",
		e.Object, len(e.Conflicts), strings.Join(parts, ", "))
}

// Unwrap returns the API server's error.
func (e *ConflictError) Unwrap() error { return e.Err }

// conflictsOf reads the field conflicts out of a server-side apply error.
func conflictsOf(err error) []deploy.Conflict {
	if !apierrors.IsConflict(err) {
		return nil
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}
	var out []deploy.Conflict
	for _, c := range status.Status().Details.Causes {
		if c.Type != metav1.CauseTypeFieldManagerConflict {
			continue
		}
		out = append(out, deploy.Conflict{Field: c.Field, Manager: managerOf(c.Message)})
	}
	return out
}

// managerOf extracts the manager from a cause message such as
// `conflict with "kubectl-edit" using apps/v1`.
func managerOf(msg string) string {
	if _, rest, ok := strings.Cut(msg, `"`); ok {
		if m, _, ok := strings.Cut(rest, `"`); ok {
			return m
		}
	}
	return msg
}
