package rollout

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The names and labels [CanaryDeployment] gives a canary, as Flagger names its
// "-primary": the stable version keeps its Deployment, and the canary runs beside it
// in "<name>-canary", labelled track=canary where the stable one is track=stable.
const (
	// TrackLabel tells the stable version's Deployment and pods from the canary's. The
	// stable Deployment's selector must select by it, so that it never takes the
	// canary's pods.
	TrackLabel = "track"
	// StableTrack and CanaryTrack are the values of [TrackLabel] of the two versions.
	StableTrack = "stable"
	CanaryTrack = "canary"
	// CanarySuffix is added to the stable Deployment's name to name the canary.
	CanarySuffix = "-canary"
)

// revisionAnnotation is what the Deployment controller writes on a Deployment it
// rolled out; a copy must not carry the stable one's.
const revisionAnnotation = "deployment.kubernetes.io/revision"

// CanaryDeployment returns the Deployment that runs a new release beside its stable
// version for a [Canary] rollout. release is the new release's Deployment as it is
// written for the stable version (the manifests of the release, or the live object):
// the same name as the stable Deployment in the cluster, [TrackLabel] in its selector.
// The canary is a copy of it (release is not changed)
//
//   - named "<name>-canary" ([CanarySuffix]), in the same namespace, with its
//     apiVersion and kind set (a Deployment read with a clientset has none);
//   - labelled track=canary ([CanaryTrack]) on the Deployment, in its selector's
//     matchLabels and on its pod template, in place of the stable value, so neither
//     Deployment's selector selects the other's pods;
//   - without spec.replicas: the rollout's router scales it (mesh/replicas), or the
//     rollout does ([Canary.CanaryReplicas]). A canary that does not exist yet starts
//     with the API server's default of one replica; re-applying the canary of a later
//     release leaves its replica count to the rollout;
//   - without what the API server writes (uid, resourceVersion, generation, managed
//     fields, status, the Deployment controller's revision annotation), so a live
//     Deployment can be given.
//
// The two Deployments' labels then select them for the rollout: give the stable
// Deployment's labels as [Canary.StableSelector] and the canary's as
// [Canary.CanarySelector]. A release that is not a Deployment for a canary (no name,
// a name too long for the suffix, a selector without [TrackLabel] in its matchLabels,
// or one that already says track=canary or uses [TrackLabel] in matchExpressions) is
// an error wrapping [ErrInvalid].
func CanaryDeployment(release *appsv1.Deployment) (*appsv1.Deployment, error) {
	if release == nil {
		return nil, fmt.Errorf("canary Deployment: %w: no release Deployment", ErrInvalid)
	}
	if err := canaryable(release); err != nil {
		return nil, fmt.Errorf("canary of Deployment %s/%s: %w: %w", release.Namespace, release.Name, ErrInvalid, err)
	}
	c := release.DeepCopy()
	c.TypeMeta = metav1.TypeMeta{APIVersion: appsv1.SchemeGroupVersion.String(), Kind: "Deployment"}
	c.ObjectMeta = metav1.ObjectMeta{
		Name:            release.Name + CanarySuffix,
		Namespace:       release.Namespace,
		Labels:          withTrack(release.Labels),
		Annotations:     maps.Clone(release.Annotations),
		OwnerReferences: slices.Clone(release.OwnerReferences),
	}
	delete(c.Annotations, revisionAnnotation)
	if len(c.Annotations) == 0 {
		c.Annotations = nil
	}
	c.Spec.Replicas = nil
	c.Spec.Selector.MatchLabels = withTrack(release.Spec.Selector.MatchLabels)
	c.Spec.Template.Labels = withTrack(release.Spec.Template.Labels)
	c.Status = appsv1.DeploymentStatus{}
	return c, nil
}

// canaryable reports what keeps release from having a canary.
func canaryable(release *appsv1.Deployment) error {
	var errs []error
	if release.Name == "" {
		errs = append(errs, errors.New("no name"))
	} else if msgs := validation.IsDNS1123Subdomain(release.Name + CanarySuffix); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("canary name %q: %v", release.Name+CanarySuffix, msgs))
	}
	sel := release.Spec.Selector
	if sel == nil {
		sel = &metav1.LabelSelector{}
	}
	switch track, ok := sel.MatchLabels[TrackLabel]; {
	case !ok:
		errs = append(errs, fmt.Errorf("the selector has no %s label: the stable Deployment would select the canary's pods (select and label the pods with %s: %s)",
			TrackLabel, TrackLabel, StableTrack))
	case track == CanaryTrack:
		errs = append(errs, fmt.Errorf("the selector says %s: %s: this is a canary already", TrackLabel, CanaryTrack))
	}
	for _, r := range sel.MatchExpressions {
		if r.Key == TrackLabel {
			errs = append(errs, fmt.Errorf("the selector's matchExpressions use %s: select by it with matchLabels only", TrackLabel))
			break
		}
	}
	return errors.Join(errs...)
}

// withTrack returns a copy of labels with TrackLabel set to CanaryTrack.
func withTrack(labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[TrackLabel] = CanaryTrack
	return out
}

// CanaryObject is [CanaryDeployment] for the objects that move between render, gate
// and apply: release is an apps/v1 Deployment as an unstructured object, and so is
// the canary. The canary is a copy of release in which CanaryDeployment's metadata,
// selector labels and pod template labels replace release's, without spec.replicas
// and status: every other field stays as written, those the Deployment type of this
// module does not know included.
func CanaryObject(release *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	if release == nil {
		return nil, fmt.Errorf("canary Deployment: %w: no release Deployment", ErrInvalid)
	}
	if gvk := release.GroupVersionKind(); gvk != appsv1.SchemeGroupVersion.WithKind("Deployment") {
		return nil, fmt.Errorf("canary of %s %s/%s: %w: not an apps/v1 Deployment", gvk.Kind, release.GetNamespace(), release.GetName(), ErrInvalid)
	}
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(release.Object, &d); err != nil {
		return nil, fmt.Errorf("canary of Deployment %s/%s: %w: %w", release.GetNamespace(), release.GetName(), ErrInvalid, err)
	}
	c, err := CanaryDeployment(&d)
	if err != nil {
		return nil, err
	}
	meta, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&c.ObjectMeta)
	if err != nil {
		return nil, fmt.Errorf("canary of Deployment %s/%s: %w", release.GetNamespace(), release.GetName(), err)
	}
	delete(meta, "creationTimestamp") // null: the API server sets it
	obj := release.DeepCopy()
	obj.Object["metadata"] = meta
	for _, f := range []struct {
		labels map[string]string
		path   []string
	}{
		{c.Spec.Selector.MatchLabels, []string{"spec", "selector", "matchLabels"}},
		{c.Spec.Template.Labels, []string{"spec", "template", "metadata", "labels"}},
	} {
		if err := unstructured.SetNestedStringMap(obj.Object, f.labels, f.path...); err != nil {
			return nil, fmt.Errorf("canary of Deployment %s/%s: %w", release.GetNamespace(), release.GetName(), err)
		}
	}
	unstructured.RemoveNestedField(obj.Object, "spec", "replicas")
	unstructured.RemoveNestedField(obj.Object, "status")
	return obj, nil
}
