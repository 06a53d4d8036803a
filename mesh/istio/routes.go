package istio

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/shipkit/shipkit/mesh"
)

// routes is a VirtualService's spec.http as read from the cluster, kept
// unstructured so that every field survives an edit.
type routes struct {
	list     []any // the HTTP routes, edited in place
	weighted []int // indices of the routes to the Service
	r        *Router
}

// parse reads the VirtualService's HTTP routes and finds those to the Service. A
// route to the Service and to another host as well cannot be split and is an error,
// as is a VirtualService without any route to split.
func (r *Router) parse(vs *unstructured.Unstructured) (*routes, error) {
	list, _, err := unstructured.NestedSlice(vs.Object, "spec", "http")
	if err != nil {
		return nil, fmt.Errorf("%s: spec.http: %w", r.route, err)
	}
	rs := &routes{list: list, r: r}
	for i, raw := range list {
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: http route %d is not an object", r.route, i)
		}
		name, _, _ := unstructured.NestedString(m, "name")
		if r.isHeaderRoute(name) {
			continue
		}
		dests, _, _ := unstructured.NestedSlice(m, "route")
		var ours int
		var other []string
		for _, d := range dests {
			host, _, _ := unstructured.NestedString(asMap(d), "destination", "host")
			if r.isService(host) {
				ours++
			} else {
				other = append(other, host)
			}
		}
		switch {
		case ours == 0:
			continue
		case len(other) > 0:
			return nil, &mesh.PrerequisiteError{Object: r.route.String(), Problem: fmt.Sprintf(
				"%s sends traffic to %s besides Service %s; the router splits traffic only between its versions",
				describe(i, name), strings.Join(other, ", "), r.route.Service)}
		}
		rs.weighted = append(rs.weighted, i)
	}
	if len(rs.weighted) == 0 {
		return nil, &mesh.PrerequisiteError{Object: r.route.String(), Problem: "has no HTTP route to host " + r.route.Service}
	}
	return rs, nil
}

func describe(i int, name string) string {
	if name != "" {
		return fmt.Sprintf("http route %d (%s)", i, name)
	}
	return fmt.Sprintf("http route %d", i)
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// isService reports whether a destination host names the router's Service: its
// short name, name.namespace, or a name.namespace.svc... domain name.
func (r *Router) isService(host string) bool {
	local := r.route.Service + "." + r.route.Namespace
	return host == r.route.Service || host == local || host == local+".svc" || strings.HasPrefix(host, local+".svc.")
}

// isHeaderRoute reports whether a route of this name is one SetHeaderMatch added.
func (r *Router) isHeaderRoute(name string) bool {
	if name == r.opts.headerRoute {
		return true
	}
	n, ok := strings.CutPrefix(name, r.opts.headerRoute+"-")
	_, err := strconv.Atoi(n)
	return ok && err == nil
}

// destinations returns the destinations of route i and the ones to copy for the
// stable and the canary subset: the entries of those subsets when they exist, else
// the first entry.
func (rs *routes) destinations(i int) (dests []any, stable, canary map[string]any) {
	dests, _, _ = unstructured.NestedSlice(asMap(rs.list[i]), "route")
	for _, d := range dests {
		switch subset, _, _ := unstructured.NestedString(asMap(d), "destination", "subset"); subset {
		case StableSubset:
			stable = asMap(d)
		case CanarySubset:
			canary = asMap(d)
		}
	}
	if stable == nil {
		stable = asMap(dests[0])
	}
	if canary == nil {
		canary = stable
	}
	return dests, stable, canary
}

// to returns a copy of the destination d that goes to subset, with the given weight
// (none when weight is negative).
func to(d map[string]any, subset string, weight int32) map[string]any {
	c := runtime.DeepCopyJSONValue(d).(map[string]any)
	_ = unstructured.SetNestedField(c, subset, "destination", "subset")
	delete(c, "weight")
	if weight >= 0 {
		c["weight"] = int64(weight)
	}
	return c
}

// setWeight makes each weighted route's destinations the stable subset with
// 100-canary and the canary subset with canary.
func (rs *routes) setWeight(canary int32) {
	for _, i := range rs.weighted {
		_, s, c := rs.destinations(i)
		asMap(rs.list[i])["route"] = []any{to(s, StableSubset, 100-canary), to(c, CanarySubset, canary)}
	}
}

// weight returns the canary subset's share of the first weighted route, in percent
// rounded down. A lone destination without a weight takes all traffic.
func (rs *routes) weight() int32 {
	dests, _, _ := unstructured.NestedSlice(asMap(rs.list[rs.weighted[0]]), "route")
	var total, canary int64
	for _, d := range dests {
		w, found, _ := unstructured.NestedInt64(asMap(d), "weight")
		if !found && len(dests) == 1 {
			w = 100
		}
		total += w
		if subset, _, _ := unstructured.NestedString(asMap(d), "destination", "subset"); subset == CanarySubset {
			canary += w
		}
	}
	if total == 0 {
		return 0
	}
	return int32(canary * 100 / total)
}

// setHeader puts before each weighted route a copy that also matches the header and
// sends everything to the canary subset, replacing the header routes there were.
func (rs *routes) setHeader(name, value string) {
	name = strings.ToLower(name) // Istio matches lower-case header names only
	rs.rebuild(func(route map[string]any, n, of int) map[string]any {
		h := runtime.DeepCopyJSONValue(route).(map[string]any)
		h["name"] = rs.r.opts.headerRoute
		if of > 1 {
			h["name"] = rs.r.opts.headerRoute + "-" + strconv.Itoa(n+1)
		}
		matches, _, _ := unstructured.NestedSlice(h, "match")
		if len(matches) == 0 {
			matches = []any{map[string]any{}}
		}
		for _, m := range matches {
			headers, _, _ := unstructured.NestedMap(asMap(m), "headers")
			if headers == nil {
				headers = map[string]any{}
			}
			for k := range headers {
				if strings.EqualFold(k, name) {
					delete(headers, k)
				}
			}
			headers[name] = map[string]any{"exact": value}
			asMap(m)["headers"] = headers
		}
		h["match"] = matches
		_, _, c := rs.destinations(rs.weighted[n])
		h["route"] = []any{to(c, CanarySubset, -1)}
		return h
	})
}

// rebuild drops the header routes and, when header is not nil, puts before the n-th
// weighted route (of all of them) the route header returns for it.
func (rs *routes) rebuild(header func(route map[string]any, n, of int) map[string]any) {
	var list []any
	var weighted []int
	for i, route := range rs.list {
		m := asMap(route)
		if name, _, _ := unstructured.NestedString(m, "name"); rs.r.isHeaderRoute(name) {
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
