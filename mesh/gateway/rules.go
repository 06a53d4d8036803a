package gateway

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/shipkit/shipkit/mesh"
	"github.com/shipkit/shipkit/mesh/internal/kube"
)

// rules is an HTTPRoute's spec.rules as read from the cluster, kept unstructured so
// that fields this module's Gateway API types do not know survive an edit.
type rules struct {
	list     []any // the rules, edited in place
	weighted []int // indices of the rules that route to the stable or canary Service
	r        *Router
}

// parse reads obj's rules and finds those that route to the Services. A rule that
// routes to one of them and to another backend as well cannot be split and is an
// error, as is a route without any rule to split.
func (r *Router) parse(obj *unstructured.Unstructured) (*rules, error) {
	list, _, err := unstructured.NestedSlice(obj.Object, "spec", "rules")
	if err != nil {
		return nil, fmt.Errorf("%s: spec.rules: %w", r.route, err)
	}
	rs := &rules{list: list, r: r}
	for i, raw := range list {
		var rule gatewayv1.HTTPRouteRule
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: rule %d is not an object", r.route, i)
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &rule); err != nil {
			return nil, fmt.Errorf("%s: rule %d: %w", r.route, i, err)
		}
		if rule.Name != nil && r.isHeaderRule(string(*rule.Name)) {
			continue
		}
		var stable, canary int
		var other []string
		for _, ref := range rule.BackendRefs {
			switch r.service(ref.BackendObjectReference) {
			case r.route.Stable:
				stable++
			case r.route.Canary:
				canary++
			default:
				other = append(other, describeRef(ref.BackendObjectReference))
			}
		}
		switch {
		case stable+canary == 0:
			continue
		case len(other) > 0:
			return nil, &mesh.PrerequisiteError{Object: r.route.String(), Problem: fmt.Sprintf(
				"%s sends traffic to %s besides Services %s and %s; the router splits traffic only between those two",
				describeRule(i, rule), strings.Join(other, ", "), r.route.Stable, r.route.Canary)}
		case stable > 1 || canary > 1:
			return nil, &mesh.PrerequisiteError{Object: r.route.String(), Problem: fmt.Sprintf(
				"%s names the stable or the canary Service more than once", describeRule(i, rule))}
		}
		rs.weighted = append(rs.weighted, i)
	}
	if len(rs.weighted) == 0 {
		return nil, &mesh.PrerequisiteError{Object: r.route.String(), Problem: fmt.Sprintf(
			"has no rule with a backendRef to Service %s or %s", r.route.Stable, r.route.Canary)}
	}
	return rs, nil
}

// service returns the name of the Service ref points to in the route's namespace, or
// "" when it points to anything else.
func (r *Router) service(ref gatewayv1.BackendObjectReference) string {
	if ref.Group != nil && *ref.Group != "" && *ref.Group != "core" {
		return ""
	}
	if ref.Kind != nil && *ref.Kind != "Service" {
		return ""
	}
	if ref.Namespace != nil && string(*ref.Namespace) != r.route.Namespace {
		return ""
	}
	return string(ref.Name)
}

// isHeaderRule reports whether a rule of this name is one SetHeaderMatch added.
func (r *Router) isHeaderRule(name string) bool {
	if name == r.opts.headerRule {
		return true
	}
	n, ok := strings.CutPrefix(name, r.opts.headerRule+"-")
	_, err := strconv.Atoi(n)
	return ok && err == nil
}

func describeRule(i int, rule gatewayv1.HTTPRouteRule) string {
	if rule.Name != nil {
		return fmt.Sprintf("rule %d (%s)", i, *rule.Name)
	}
	return fmt.Sprintf("rule %d", i)
}

func describeRef(ref gatewayv1.BackendObjectReference) string {
	kind := "Service"
	if ref.Kind != nil {
		kind = string(*ref.Kind)
	}
	if ref.Namespace != nil {
		return kind + " " + string(*ref.Namespace) + "/" + string(ref.Name)
	}
	return kind + " " + string(ref.Name)
}

func (rs *rules) clone() []any { return runtime.DeepCopyJSONValue(rs.list).([]any) }

// refs returns the backendRefs of rule i and the indices of the stable and the
// canary ref in it (-1 when absent).
func (rs *rules) refs(i int) (refs []any, stable, canary int) {
	refs, _, _ = unstructured.NestedSlice(rs.list[i].(map[string]any), "backendRefs")
	stable, canary = -1, -1
	for j, ref := range refs {
		switch name, _, _ := unstructured.NestedString(ref.(map[string]any), "name"); name {
		case rs.r.route.Stable:
			stable = j
		case rs.r.route.Canary:
			canary = j
		}
	}
	return refs, stable, canary
}

// copyRef returns a copy of ref that points to Service name with the given weight.
func copyRef(ref any, name string, weight int32) map[string]any {
	c := runtime.DeepCopyJSONValue(ref).(map[string]any)
	c["name"] = name
	c["weight"] = int64(weight)
	return c
}

// setWeight gives the canary ref of every weighted rule canary, the stable ref the
// rest, and adds whichever of the two is missing as a copy of the other.
func (rs *rules) setWeight(canary int32) {
	for _, i := range rs.weighted {
		refs, s, c := rs.refs(i)
		if s < 0 {
			refs = append(refs, copyRef(refs[c], rs.r.route.Stable, 0))
			s = len(refs) - 1
		}
		if c < 0 {
			refs = append(refs, copyRef(refs[s], rs.r.route.Canary, 0))
			c = len(refs) - 1
		}
		refs[s].(map[string]any)["weight"] = int64(100 - canary)
		refs[c].(map[string]any)["weight"] = int64(canary)
		rs.list[i].(map[string]any)["backendRefs"] = refs
	}
}

// weight returns the canary's share of the first weighted rule, in percent rounded
// down. A ref without a weight has the API's default, 1.
func (rs *rules) weight() int32 {
	refs, s, c := rs.refs(rs.weighted[0])
	w := func(j int) int64 {
		if j < 0 {
			return 0
		}
		v, found, _ := unstructured.NestedInt64(refs[j].(map[string]any), "weight")
		if !found {
			return 1
		}
		return v
	}
	total := w(s) + w(c)
	if total == 0 {
		return 0
	}
	return int32(w(c) * 100 / total)
}

// removeHeaderRules drops the rules SetHeaderMatch added.
func (rs *rules) removeHeaderRules() { rs.rebuild(nil) }

// setHeader puts before each weighted rule a copy that also matches the header and
// sends everything to the canary, replacing the header rules there were.
func (rs *rules) setHeader(name, value string) {
	rs.rebuild(func(rule map[string]any, n, of int) map[string]any {
		h := runtime.DeepCopyJSONValue(rule).(map[string]any)
		h["name"] = rs.r.opts.headerRule
		if of > 1 {
			h["name"] = rs.r.opts.headerRule + "-" + strconv.Itoa(n+1)
		}
		matches, _, _ := unstructured.NestedSlice(h, "matches")
		if len(matches) == 0 { // the API's default: every path
			matches = []any{map[string]any{"path": map[string]any{"type": string(gatewayv1.PathMatchPathPrefix), "value": "/"}}}
		}
		for _, m := range matches {
			m := m.(map[string]any)
			headers, _, _ := unstructured.NestedSlice(m, "headers")
			headers = slices.DeleteFunc(headers, func(h any) bool {
				n, _, _ := unstructured.NestedString(h.(map[string]any), "name")
				return strings.EqualFold(n, name)
			})
			m["headers"] = append(headers, map[string]any{
				"type": string(gatewayv1.HeaderMatchExact), "name": name, "value": value,
			})
		}
		h["matches"] = matches
		refs, s, c := rs.refs(rs.weighted[n])
		if c < 0 {
			c = s
		}
		h["backendRefs"] = []any{copyRef(refs[c], rs.r.route.Canary, 100)}
		return h
	})
}

// rebuild drops the header rules and, when header is not nil, puts before the n-th
// weighted rule (of all of them) the rule header returns for it.
func (rs *rules) rebuild(header func(rule map[string]any, n, of int) map[string]any) {
	var list []any
	var weighted []int
	for i, rule := range rs.list {
		m := rule.(map[string]any)
		if name, _, _ := unstructured.NestedString(m, "name"); rs.r.isHeaderRule(name) {
			continue
		}
		if n := slices.Index(rs.weighted, i); n >= 0 {
			if header != nil {
				list = append(list, header(m, n, len(rs.weighted)))
			}
			weighted = append(weighted, len(list))
		}
		list = append(list, m)
	}
	rs.list, rs.weighted = list, weighted
}

// ports returns the ports that the weighted rules' stable and canary refs name.
func (rs *rules) ports() []int64 {
	var ports []int64
	for _, i := range rs.weighted {
		refs, s, c := rs.refs(i)
		for _, j := range []int{s, c} {
			if j < 0 {
				continue
			}
			if p, found, _ := unstructured.NestedInt64(refs[j].(map[string]any), "port"); found && !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
	}
	return ports
}

// servesPorts returns a [mesh.PrerequisiteError] unless svc has every port.
func servesPorts(svc *unstructured.Unstructured, ports []int64) error {
	var s corev1.Service
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(svc.Object, &s); err != nil {
		return fmt.Errorf("%s: %w", kube.Name("Service", svc.GetNamespace(), svc.GetName()), err)
	}
	for _, p := range ports {
		if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return int64(sp.Port) == p }) {
			return &mesh.PrerequisiteError{Object: kube.Name("Service", s.Namespace, s.Name),
				Problem: fmt.Sprintf("has no port %d, which the route sends traffic to", p)}
		}
	}
	return nil
}
