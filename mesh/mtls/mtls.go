// Package mtls writes the Istio objects that make traffic between services mutual
// TLS: a PeerAuthentication that makes the sidecars of a namespace, or of the
// workloads a label selector picks, accept only mTLS (mode STRICT), and for each
// destination host a DestinationRule whose clients send ISTIO_MUTUAL TLS.
//
// [Policy.Objects] renders them as unstructured objects (security.istio.io/v1 and
// networking.istio.io/v1) for deploy/apply; the package links no Istio client. A
// DestinationRule named like the one mesh/istio's router writes (the Service's name)
// is the same object: applied under different field managers, this package's
// trafficPolicy and the router's subsets live side by side.
package mtls

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Mode is how a workload's sidecar treats plain-text connections.
type Mode string

// The modes of a PeerAuthentication.
const (
	// Strict accepts mutual TLS only.
	Strict Mode = "STRICT"
	// Permissive accepts mutual TLS and plain text, for the time it takes to
	// migrate every client into the mesh.
	Permissive Mode = "PERMISSIVE"
)

// Policy asks for mutual TLS in one namespace.
type Policy struct {
	// Namespace is where the objects go.
	Namespace string
	// Workload selects the pods the PeerAuthentication applies to, as exact labels
	// ("app=api,tier=backend"); Istio selects workloads by exact labels only. Empty:
	// every workload of the namespace.
	Workload string
	// Name of the PeerAuthentication. Default: "default" for a namespace-wide
	// policy, "mtls-" and the selector's labels for a workload's.
	Name string
	// Mode defaults to [Strict].
	Mode Mode
	// Hosts each get a DestinationRule with TLS mode ISTIO_MUTUAL, named after the
	// host's first label ("api" for "api.shop.svc.cluster.local"). Short names
	// ("api") are Services in Namespace.
	Hosts []string
	// Labels are added to every object.
	Labels map[string]string
}

// Validate returns every problem of the policy, each naming its field.
func (p Policy) Validate() error {
	var errs []error
	for _, msg := range validation.IsDNS1123Label(p.Namespace) {
		errs = append(errs, fmt.Errorf("namespace %q: %s", p.Namespace, msg))
	}
	if _, err := workload(p.Workload); err != nil {
		errs = append(errs, err)
	}
	if p.Name != "" {
		for _, msg := range validation.IsDNS1123Subdomain(p.Name) {
			errs = append(errs, fmt.Errorf("name %q: %s", p.Name, msg))
		}
	}
	if p.Mode != "" && p.Mode != Strict && p.Mode != Permissive {
		errs = append(errs, fmt.Errorf("mode %q: want %s or %s", p.Mode, Strict, Permissive))
	}
	seen := map[string]string{}
	for i, h := range p.Hosts {
		if msgs := validation.IsDNS1123Subdomain(h); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("hosts[%d] %q: %s", i, h, strings.Join(msgs, "; ")))
			continue
		}
		if other, dup := seen[ruleName(h)]; dup {
			errs = append(errs, fmt.Errorf("hosts[%d] %q: its DestinationRule would have the same name, %s, as the one of %q", i, h, ruleName(h), other))
		}
		seen[ruleName(h)] = h
	}
	if err := validateLabels(p.Labels); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("mtls: %w", err)
	}
	return nil
}

// workload parses a selector of exact labels: key=value,...
func workload(sel string) (map[string]string, error) {
	if strings.TrimSpace(sel) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for part := range strings.SplitSeq(sel, ",") {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(strings.TrimPrefix(v, "="))
		if !ok || strings.ContainsAny(k+v, "!=()<> ") {
			return nil, fmt.Errorf("workload %q: %q is not key=value (Istio selects workloads by exact labels)", sel, strings.TrimSpace(part))
		}
		m[k] = v
	}
	if err := validateLabels(m); err != nil {
		return nil, fmt.Errorf("workload %q: %w", sel, err)
	}
	return m, nil
}

func validateLabels(m map[string]string) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("label key %q: %s", k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Errorf("label %s value %q: %s", k, v, msg))
		}
	}
	return errors.Join(errs...)
}

// ruleName is the DestinationRule name of a host: its first label.
func ruleName(host string) string {
	name, _, _ := strings.Cut(host, ".")
	return name
}

// nonName matches what may not appear in an object name.
var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// Objects validates the policy and renders its PeerAuthentication and
// DestinationRules.
func (p Policy) Objects() ([]*unstructured.Unstructured, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	sel, _ := workload(p.Workload)
	name := p.Name
	if name == "" {
		name = "default"
		if len(sel) > 0 {
			parts := []string{"mtls"}
			for _, k := range slices.Sorted(maps.Keys(sel)) {
				parts = append(parts, k, sel[k])
			}
			name = nonName.ReplaceAllString(strings.ToLower(strings.Join(parts, "-")), "-")
			name = strings.Trim(name[:min(len(name), validation.DNS1123SubdomainMaxLength)], "-")
		}
	}
	spec := map[string]any{"mtls": map[string]any{"mode": string(cmp.Or(p.Mode, Strict))}}
	if len(sel) > 0 {
		spec["selector"] = map[string]any{"matchLabels": toAny(sel)}
	}
	objs := []*unstructured.Unstructured{p.object("security.istio.io/v1", "PeerAuthentication", name, spec)}
	for _, h := range p.Hosts {
		objs = append(objs, p.object("networking.istio.io/v1", "DestinationRule", ruleName(h), map[string]any{
			"host":          h,
			"trafficPolicy": map[string]any{"tls": map[string]any{"mode": "ISTIO_MUTUAL"}},
		}))
	}
	return objs, nil
}

func (p Policy) object(apiVersion, kind, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetName(name)
	u.SetNamespace(p.Namespace)
	if len(p.Labels) > 0 {
		u.SetLabels(p.Labels)
	}
	return u
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
