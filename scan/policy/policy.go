// Package policy checks Kubernetes manifests before they are applied: the Pod
// Security Standards (privileged, baseline, restricted) with the evaluator the API
// server itself uses (k8s.io/pod-security-admission/policy), plus the hardening
// checks users expect from kubesec and kube-linter — images pinned by digest and not
// "latest", resources set, a read-only root filesystem, no privilege escalation,
// seccomp, no host namespaces, no service account token unless asked for, and no
// plaintext Secret data in the manifests.
//
// A [Checker] evaluates every pod spec package deploy's walker ([deploy.Walk])
// finds: Pods and the pod templates of workloads (Deployment, StatefulSet,
// DaemonSet, ReplicaSet, ReplicationController, Job, CronJob, Argo Rollouts,
// Knative, any custom resource holding a list of containers), and the pods that
// Argo Workflows templates and Tekton tasks become, around their containers and
// steps. It checks image volumes' references like container images, reports
// images the walker cannot interpret (rule "image-unrecognised"), and checks
// Secrets and ServiceAccounts. It returns one [Violation] per problem, naming the
// object (a [deploy.ObjectRef], as the deploy gate does), the field path and the
// fix. Rules can be switched off one by one with [Disable]; the [Result] keeps the
// reasons, so a report shows what was not checked.
//
// The package links Kubernetes' API types and the Pod Security evaluator only, so a
// deploy gate can import it without a scanner.
package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	psapi "k8s.io/pod-security-admission/api"
	psa "k8s.io/pod-security-admission/policy"

	"github.com/shipkit/shipkit/deploy"
)

// Level is a Pod Security Standards level.
type Level string

// The Pod Security Standards levels, from the most to the least permissive.
const (
	// Privileged allows everything; only the hardening rules are checked.
	Privileged Level = "privileged"
	// Baseline forbids the known privilege escalations.
	Baseline Level = "baseline"
	// Restricted is the hardened level (the default).
	Restricted Level = "restricted"
)

// ParseLevel parses "privileged", "baseline" or "restricted".
func ParseLevel(s string) (Level, error) {
	switch l := Level(strings.ToLower(strings.TrimSpace(s))); l {
	case Privileged, Baseline, Restricted:
		return l, nil
	}
	return "", fmt.Errorf("unknown Pod Security level %q (want privileged, baseline or restricted)", s)
}

// Violation is one rule an object breaks. (Vulnerabilities are
// scan/report.Finding.)
type Violation struct {
	// Rule is the stable id of the rule that found it: "pss/<check id>" for a Pod
	// Security check (e.g. "pss/privileged"), or a hardening rule's id (e.g.
	// "image-digest"); see [Rules].
	Rule string
	// Object names the object, with its API group, as a deploy gate's reasons do.
	Object deploy.ObjectRef
	// Path is the field path in the object, e.g.
	// spec.template.spec.containers[name=web].securityContext.privileged.
	Path string
	// Message says what is wrong.
	Message string
	// Fix says how to fix it.
	Fix string
}

// String returns the violation on one line: rule, object, path, message and fix.
func (v Violation) String() string {
	return fmt.Sprintf("[%s] %s: %s: %s (fix: %s)", v.Rule, v.Object, v.Path, v.Message, v.Fix)
}

// Disabled is a rule that was switched off, and why.
type Disabled struct {
	Rule, Reason string
}

// Result is what a [Checker] found in a set of objects.
type Result struct {
	// Level is the Pod Security level the objects were checked against.
	Level Level
	// Violations lists the problems, in the order of the objects given.
	Violations []Violation
	// Disabled lists the rules that were switched off, with their reasons.
	Disabled []Disabled
}

// Passed reports whether no rule found a problem.
func (r *Result) Passed() bool { return r != nil && len(r.Violations) == 0 }

// Option configures a [Checker].
type Option func(*config)

type config struct {
	level    Level
	disabled []Disabled
	errs     []error
}

// WithLevel sets the Pod Security level to check against; the default is
// [Restricted]. [Privileged] checks the hardening rules only.
func WithLevel(l Level) Option {
	return func(c *config) {
		if _, err := ParseLevel(string(l)); err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.level = l
	}
}

// Disable switches a rule off (see [Rules] for the ids). The reason is required and
// is kept in every [Result], so a report shows what was not checked and why.
func Disable(rule, reason string) Option {
	return func(c *config) {
		if strings.TrimSpace(reason) == "" {
			c.errs = append(c.errs, fmt.Errorf("disabling rule %q: a reason is required", rule))
			return
		}
		c.disabled = append(c.disabled, Disabled{Rule: rule, Reason: reason})
	}
}

// Checker evaluates objects against the policy. It is safe for concurrent use.
type Checker struct {
	level    Level
	pss      []pssCheck
	hardened map[string]bool // hardening rules that are on
	disabled []Disabled
}

// New returns a Checker. It fails on an unknown level, an unknown rule or a rule
// disabled without a reason.
func New(opts ...Option) (*Checker, error) {
	cfg := config{level: Restricted}
	for _, o := range opts {
		o(&cfg)
	}
	known := map[string]bool{}
	for _, r := range Rules() {
		known[r.ID] = true
	}
	off := map[string]bool{}
	for _, d := range cfg.disabled {
		if !known[d.Rule] {
			cfg.errs = append(cfg.errs, fmt.Errorf("disabling rule %q: no such rule (see policy.Rules)", d.Rule))
		}
		off[d.Rule] = true
	}
	if err := errors.Join(cfg.errs...); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	c := &Checker{level: cfg.level, disabled: slices.Clone(cfg.disabled), hardened: map[string]bool{}}
	for _, p := range pssChecks(cfg.level) {
		if !off[pssRule(p.id)] {
			c.pss = append(c.pss, p)
		}
	}
	for _, h := range hardeningRules {
		if !off[h.id] {
			c.hardened[h.id] = true
		}
	}
	return c, nil
}

// Check evaluates the objects. Objects of kinds the policy has no rule for (a
// Service, a ConfigMap) are skipped. It returns an error only for objects it
// cannot read, such as a workload whose pod template is malformed; the error names
// each of them, and the Result still holds the findings of the others.
func (c *Checker) Check(ctx context.Context, objs []*unstructured.Unstructured) (*Result, error) {
	res := &Result{Level: c.level, Disabled: slices.Clone(c.disabled)}
	accounts := serviceAccounts(objs)
	var errs []error
	for _, u := range objs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if u == nil {
			continue
		}
		o, err := read(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if o == nil {
			continue
		}
		res.Violations = append(res.Violations, c.checkObject(o, accounts)...)
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("policy: %w", err)
	}
	return res, nil
}

func (c *Checker) checkObject(o *object, accounts map[string]*bool) []Violation {
	var vs []Violation
	for _, p := range o.pods {
		vs = append(vs, c.checkPodSecurity(o, p)...)
	}
	seen := map[string]bool{}
	for _, v := range vs {
		seen[v.Path] = true
	}
	for _, h := range hardeningRules {
		if !c.hardened[h.id] {
			continue
		}
		for _, v := range h.check(o, accounts) {
			// A hardening rule that repeats a Pod Security check on the same field
			// (allowPrivilegeEscalation, seccomp, host namespaces) reports once.
			if seen[v.Path] && h.overlapsPSS {
				continue
			}
			vs = append(vs, v)
		}
	}
	// Pod specs built around containers can share fields (an Argo workflow's
	// volumes and security context): report each problem once.
	done := map[Violation]bool{}
	return slices.DeleteFunc(vs, func(v Violation) bool {
		if done[v] {
			return true
		}
		done[v] = true
		return false
	})
}

// Rule describes one rule.
type Rule struct {
	// ID is the rule's stable id, as in [Violation].Rule and [Disable].
	ID string
	// Level is the lowest Pod Security level that has the rule, for "pss/" rules;
	// empty for hardening rules, which apply at every level.
	Level Level
	// Description says what the rule checks.
	Description string
}

// Rules lists every rule: the Pod Security checks of the evaluator this package
// links, then the hardening rules.
func Rules() []Rule {
	var rs []Rule
	seen := map[string]bool{}
	for _, ch := range psa.DefaultChecks() {
		id := pssRule(string(ch.ID))
		if seen[id] {
			continue
		}
		seen[id] = true
		l := Baseline
		if ch.Level == psapi.LevelRestricted {
			l = Restricted
		}
		rs = append(rs, Rule{ID: id, Level: l, Description: describePSS(string(ch.ID))})
	}
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Level != rs[j].Level {
			return rs[i].Level == Baseline
		}
		return rs[i].ID < rs[j].ID
	})
	for _, h := range hardeningRules {
		rs = append(rs, Rule{ID: h.id, Description: h.description})
	}
	return rs
}

func pssRule(checkID string) string { return "pss/" + checkID }
