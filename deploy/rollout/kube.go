package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// managedLabels mark the objects a rollout makes for itself (its Lease and ConfigMap).
func managedLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/managed-by": "shipkit"}
}

// newClient returns a clientset for the cluster of cfg; it contacts nothing.
func newClient(cfg *rest.Config) (kubernetes.Interface, error) {
	if cfg == nil {
		return nil, errors.New("no *rest.Config")
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}

// needClient refuses a nil clientset.
func needClient(c kubernetes.Interface) error {
	if c == nil {
		return errors.New("no client")
	}
	return nil
}

// transient reports whether err may go away by itself: the API server is busy,
// restarting or unreachable.
func transient(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) ||
		utilnet.IsConnectionRefused(err) || utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// selectorString prints a label set the way kubectl takes it: "app=web,track=canary".
func selectorString(set map[string]string) string { return labels.SelectorFromSet(set).String() }

// findDeployment returns the one Deployment of the namespace whose labels include set.
// No match or several are errors wrapping [ErrInvalid].
func findDeployment(ctx context.Context, c kubernetes.Interface, ns string, set map[string]string, role string) (*appsv1.Deployment, error) {
	list, err := c.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: selectorString(set)})
	if err != nil {
		return nil, fmt.Errorf("list %s Deployments (%s) in namespace %s: %w", role, selectorString(set), ns, err)
	}
	switch len(list.Items) {
	case 1:
		return &list.Items[0], nil
	case 0:
		return nil, fmt.Errorf("%w: no %s Deployment in namespace %s has the labels %s", ErrInvalid, role, ns, selectorString(set))
	}
	names := make([]string, len(list.Items))
	for i, d := range list.Items {
		names[i] = d.Name
	}
	return nil, fmt.Errorf("%w: %d Deployments in namespace %s have the %s labels %s (%s); want exactly one",
		ErrInvalid, len(names), ns, role, selectorString(set), strings.Join(names, ", "))
}

// selects reports whether the Deployment's selector selects pods with the labels.
func selects(d *appsv1.Deployment, podLabels map[string]string) (bool, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return false, fmt.Errorf("%w: Deployment %s/%s: selector: %w", ErrInvalid, d.Namespace, d.Name, err)
	}
	return !sel.Empty() && sel.Matches(labels.Set(podLabels)), nil
}

// revision hashes a pod template's spec: the version a rollout rolls out. Labels are
// left out, so a canary and the stable Deployment it was promoted to have the same
// revision.
func revision(t *corev1.PodTemplateSpec) string {
	b, _ := json.Marshal(t.Spec) // a PodSpec always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// replicas returns spec.replicas, 1 when unset.
func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// ready reports whether the Deployment has rolled out its template: every replica
// updated and available, no old ones left. The string says what it waits for.
func ready(d *appsv1.Deployment) (bool, string) {
	want := replicas(d)
	st := d.Status
	for _, c := range st.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return false, "progress deadline exceeded: " + c.Message
		}
	}
	switch {
	case st.ObservedGeneration < d.Generation:
		return false, "spec change not observed yet"
	case st.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want)
	case st.Replicas > want:
		return false, fmt.Sprintf("%d old replicas terminating", st.Replicas-want)
	case st.AvailableReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas available", st.AvailableReplicas, want)
	}
	return true, ""
}

// errNotReady is wrapped when a Deployment did not become ready in time.
var errNotReady = errors.New("not ready")

// waitReady polls the Deployment until it is ready, timeout passes or ctx ends. API
// errors are retried until then.
func waitReady(ctx context.Context, c kubernetes.Interface, ns, name string, timeout, poll time.Duration) error {
	deadline := time.Now().Add(timeout)
	var why string
	var lastErr error
	for {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			ok, w := ready(d)
			if ok {
				return nil
			}
			why, lastErr = w, nil
			if strings.HasPrefix(w, "progress deadline") {
				return fmt.Errorf("deployment %s/%s %w: %s", ns, name, errNotReady, w)
			}
		case ctx.Err() != nil:
		default:
			lastErr = err
		}
		if time.Now().After(deadline) {
			if lastErr != nil {
				return fmt.Errorf("deployment %s/%s: %w", ns, name, lastErr)
			}
			return fmt.Errorf("deployment %s/%s %w after %s: %s", ns, name, errNotReady, timeout, why)
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for Deployment %s/%s: %w", ns, name, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// scale sets a Deployment's replicas.
func scale(ctx context.Context, c kubernetes.Interface, ns, name string, n int32) error {
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	_, err := c.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("scale Deployment %s/%s to %d: %w", ns, name, n, err)
	}
	return nil
}

// checkServices makes sure the Services exist.
func checkServices(ctx context.Context, c kubernetes.Interface, ns string, names []string) error {
	var errs []error
	for _, n := range names {
		_, err := c.CoreV1().Services(ns).Get(ctx, n, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			errs = append(errs, fmt.Errorf("%w: Service %s/%s does not exist", ErrInvalid, ns, n))
		case err != nil:
			errs = append(errs, fmt.Errorf("get Service %s/%s: %w", ns, n, err))
		}
	}
	return errors.Join(errs...)
}

// checker is a router that can tell whether its objects and CRDs are in place.
type checker interface {
	Check(ctx context.Context) error
}

// checkRouter calls the router's Check, if it has one.
func checkRouter(ctx context.Context, r any) error {
	if c, ok := r.(checker); ok {
		if err := c.Check(ctx); err != nil {
			return fmt.Errorf("%w: router: %w", ErrInvalid, err)
		}
	}
	return nil
}

// podLabelsFor returns the labels of a template moved into Deployment d: its own labels
// with those d's selector matches on.
func podLabelsFor(d *appsv1.Deployment, tmpl map[string]string) map[string]string {
	out := make(map[string]string, len(tmpl))
	for k, v := range tmpl {
		out[k] = v
	}
	if d.Spec.Selector != nil {
		for k, v := range d.Spec.Selector.MatchLabels {
			out[k] = v
		}
	}
	return out
}
