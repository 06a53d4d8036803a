package job

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/kindscope"
)

// placeNamespaces puts the rendered objects where apply will put them, so that the
// gate (built-in rules, Rego, admission policies) judges, and the plan shows, the
// objects that are applied: a namespaced object that names no namespace gets
// defaultNamespace (the one decision apply also follows), and a cluster-scoped one
// loses a namespace it names, as apply drops it. Which kinds are namespaced is
// internal/kindscope's answer: Kubernetes' own kinds, then, with a kubeconfig, the
// cluster's discovery, then the CustomResourceDefinitions among the objects.
//
// A kind none of them knows is an error with a cluster (apply would refuse it the
// same way, later). Without a cluster, where the deploy stage only plans and
// applies nothing, such an object is left as rendered and the summary names it:
// failing would refuse a plan for a custom resource whose CRD is installed
// elsewhere, and guessing its scope could judge it where it will never be.
//
// It returns a note for the render summary: what it placed, what it left.
func (j *Job) placeNamespaces(objs []*unstructured.Unstructured) (string, error) {
	placed, cleared, unknown, err := j.place(objs)
	if err != nil {
		return "", err
	}
	var note []string
	if placed > 0 {
		note = append(note, fmt.Sprintf("%d placed in namespace %s", placed, j.defaultNamespace()))
	}
	if cleared > 0 {
		note = append(note, fmt.Sprintf("%d cluster-scoped without their namespace", cleared))
	}
	if len(unknown) > 0 {
		j.log.Warn("kinds of unknown scope left as rendered: no cluster to ask", "objects", unknown)
		note = append(note, fmt.Sprintf("left as rendered, scope unknown without a cluster: %s", strings.Join(unknown, ", ")))
	}
	if len(note) == 0 {
		return "", nil
	}
	return "; " + strings.Join(note, "; "), nil
}

// place is placeNamespaces without the note: it counts the objects it placed and
// those it cleared, and names those it left. Placing placed objects again changes
// nothing, so the gate places [Job.Objects] once more for objects a program added
// after render.
func (j *Job) place(objs []*unstructured.Unstructured) (placed, cleared int, unknown []string, err error) {
	var opts kindscope.Options
	hint := "a CustomResourceDefinition among the rendered objects"
	if j.cfg.Kubeconfig != "" {
		if opts.Mapper, err = j.mapper(); err != nil {
			return 0, 0, nil, err
		}
		hint += ", or install its CRD in the cluster"
	}
	scopes, err := kindscope.New(opts, objs)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("kinds' scopes: %w", err)
	}
	ns := j.defaultNamespace()
	for _, o := range objs {
		k, err := scopes.Lookup(o.GroupVersionKind(), hint)
		switch {
		case errors.Is(err, kindscope.ErrUnknownKind) && opts.Mapper == nil:
			unknown = append(unknown, deploy.RefOf(o).String())
			continue
		case err != nil:
			return 0, 0, nil, fmt.Errorf("%s: %w", deploy.RefOf(o), err)
		}
		switch {
		case k.Cluster && o.GetNamespace() != "":
			o.SetNamespace("")
			cleared++
		case !k.Cluster && o.GetNamespace() == "" && ns != "":
			o.SetNamespace(ns)
			placed++
		}
	}
	return placed, cleared, unknown, nil
}

// mapper maps kinds to resources and scopes by the discovery of the cluster of
// Kubeconfig, asked only for kinds that are not Kubernetes' own. The job makes it
// once: render's placement, the admission policies and the gate share it (and its
// cache of the cluster's answers).
func (j *Job) mapper() (meta.RESTMapper, error) {
	if j.restMapper != nil {
		return j.restMapper, nil
	}
	rc, err := j.restConfig()
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("discovery of %s: %w", j.cfg.Kubeconfig, err)
	}
	j.restMapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return j.restMapper, nil
}
