package job

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/deploy/render"
	"github.com/shipkit/shipkit/scan/policy/rego"
	"github.com/shipkit/shipkit/scan/policy/vap"
)

// loadPolicies compiles the user's own policies of the config, once, before any
// stage runs: the Rego files (conftest's conventions) and the
// ValidatingAdmissionPolicies with their bindings. A Rego file that does not
// compile is a *rego.CompileError naming file:line; a CEL expression that does
// not compile, a *vap.CompileError naming the policy and the field.
func (j *Job) loadPolicies(ctx context.Context) error {
	if len(j.cfg.Rego) > 0 {
		p, err := rego.LoadFiles(ctx, j.cfg.Rego)
		if err != nil {
			return fmt.Errorf("job: rego policies: %w", err)
		}
		j.policies = append(j.policies, p)
		j.policyNames = append(j.policyNames, "Rego "+strings.Join(j.cfg.Rego, ", "))
	}
	if len(j.cfg.AdmissionPolicies) > 0 {
		var objs []*unstructured.Unstructured
		for _, f := range j.cfg.AdmissionPolicies {
			data, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("job: admission policies: %w", err)
			}
			o, err := render.Parse(f, data)
			if err != nil {
				return fmt.Errorf("job: admission policies: %w", err)
			}
			objs = append(objs, o...)
		}
		var opts []vap.Option
		if ns := j.defaultNamespace(); ns != "" {
			opts = append(opts, vap.WithDefaultNamespace(ns))
		}
		if j.cfg.Kubeconfig != "" {
			// The kinds render places by the cluster's discovery (custom resources
			// whose CRD is installed there), the policies map the same way. The
			// mapper asks the cluster only when the gate judges such a kind.
			m, err := j.mapper()
			if err != nil {
				return fmt.Errorf("job: admission policies: %w", err)
			}
			opts = append(opts, vap.WithRESTMapper(m))
		}
		p, err := vap.New(objs, opts...)
		if err != nil {
			return fmt.Errorf("job: admission policies %s: %w", strings.Join(j.cfg.AdmissionPolicies, ", "), err)
		}
		j.policies = append(j.policies, p)
		j.policyNames = append(j.policyNames, "ValidatingAdmissionPolicies "+strings.Join(j.cfg.AdmissionPolicies, ", "))
	}
	return nil
}

// defaultNamespace is the namespace a namespaced object without one is in: the
// admission policies judge it there and the deploy applies it there, so the two
// agree. It is the chart's release namespace, or Namespace (the embedded
// overlay's, which kustomize already set on every object; for a user's -overlay,
// where the objects it leaves without one go); "" when neither says (such an
// object is then an error, at the gate and at apply).
func (j *Job) defaultNamespace() string {
	if ns := j.chartNamespace(); ns != "" {
		return ns
	}
	return j.cfg.Namespace
}

// namespaceOf is the namespace a rendered namespaced object is applied to: its
// own, or defaultNamespace when it names none, as apply decides. Stages that look
// an object up in the cluster (the canary's stable Deployment and Service) use it,
// never the object's own, possibly empty, namespace.
func (j *Job) namespaceOf(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return ns
	}
	return j.defaultNamespace()
}

// gatePolicies returns the gate options of the user's own policies.
func (j *Job) gatePolicies() []gate.Option {
	if len(j.policies) == 0 {
		return nil
	}
	return []gate.Option{gate.WithObjectPolicy(j.policies...)}
}

// WriteWarnings writes the gate's warnings (the user's Rego warn rules, Warn and
// Audit bindings of admission policies, a binding that matches nothing), one a
// line; nothing before the gate has decided.
func (j *Job) WriteWarnings(w io.Writer) error {
	if j.Decision == nil {
		return nil
	}
	for _, r := range j.Decision.Warnings {
		if _, err := fmt.Fprintln(w, "warning:", r.String()); err != nil {
			return err
		}
	}
	return nil
}
