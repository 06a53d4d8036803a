package job

import (
	"context"
	"fmt"
	"io"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/apply"
)

// deploy applies the objects when a kubeconfig is given (or plans them, with
// DryRun), else says what it would create in an empty cluster.
func (j *Job) deploy(ctx context.Context) (string, error) {
	if err := j.need("gate decision", j.Decision != nil && j.Decision.Allowed()); err != nil {
		return "", err
	}
	if j.cfg.Kubeconfig == "" {
		cs := &deploy.ChangeSet{}
		for _, o := range j.Objects {
			cs.Append(deploy.Change{Object: deploy.RefOf(o), Action: deploy.Created})
		}
		j.Changes = cs
		return fmt.Sprintf("plan without a cluster: %d objects to create (give -kubeconfig to apply)", len(j.Objects)), nil
	}
	rc, err := j.restConfig()
	if err != nil {
		return "", err
	}
	objs := j.Objects
	if j.cfg.Prometheus != "" {
		client, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return "", err
		}
		if objs, j.release, err = j.canaryObjects(ctx, client); err != nil {
			return "", err
		}
	}
	m, err := apply.New(rc, apply.Options{
		FieldManager: "shipkit-pipeline",
		Namespace:    j.defaultNamespace(), // where the gate's admission policies judged objects without one
		Wait:         j.cfg.Wait,
		Force:        j.release != nil, // take the canary's fields back from the last rollout
		Logger:       j.log,
		Observer:     j.obs,
	})
	if err != nil {
		return "", err
	}
	if j.cfg.DryRun {
		if j.Changes, err = m.Plan(ctx, j.Objects); err != nil {
			return "", err
		}
		return "plan (server-side dry run): " + j.Changes.Summary(), nil
	}
	if j.Changes, err = m.Apply(ctx, objs); err != nil {
		return "", err
	}
	if j.release != nil {
		return fmt.Sprintf("applied the canary beside stable: %s; healthy", j.Changes.Summary()), nil
	}
	return fmt.Sprintf("applied: %s; healthy", j.Changes.Summary()), nil
}

// restConfig reads the cluster of Kubeconfig and Context.
func (j *Job) restConfig() (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: j.cfg.Kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: j.cfg.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", j.cfg.Kubeconfig, err)
	}
	return cfg, nil
}

// WriteChanges writes what the deploy stage did or would do, one object a line,
// with the field diffs of a plan.
func (j *Job) WriteChanges(w io.Writer) error {
	if j.Changes == nil {
		return nil
	}
	_, err := io.WriteString(w, j.Changes.String())
	return err
}
