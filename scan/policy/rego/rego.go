// Package rego checks Kubernetes objects and attestation predicates with the user's
// own Rego policies, the way conftest does, with OPA's Go library
// (github.com/open-policy-agent/opa/v1/rego).
//
// Conftest's conventions: a policy is a set of Rego modules; the rules that judge
// are named deny, violation or warn, alone or with a suffix (deny_privileged,
// warn_no_owner), in package main or in the packages the caller names
// ([WithNamespaces]); input is one object (or one predicate). A rule's messages are
// strings or objects with a string msg (the other keys are kept as
// [Finding.Metadata]); a rule that is just true judges with no message of its own.
// deny and violation findings deny, warn findings warn.
//
// A [Policy] is compiled once (a module that does not parse or compile is a
// [*CompileError] naming file:line) and evaluated for many objects at once, up to
// [WithConcurrency]; each object's evaluation is bounded by [WithTimeout] (past it,
// [ErrTimeout]). Policy.Check makes it a deploy gate's object policy
// (deploy/gate.WithObjectPolicy) and Policy.Condition a condition on verified
// attestations (deploy/gate.WithConditions, sign.Policy.Conditions), as
// policy-controller's Rego policies are.
//
// The package links OPA; deploy and deploy/gate do not: a program that gates
// without Rego carries none of it.
package rego

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	oparego "github.com/open-policy-agent/opa/v1/rego"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/scan/policy/internal/policyfile"
)

// ErrInvalidOption is the shared sentinel (deploy.ErrInvalidOption) wrapped by the
// error of an option given a value it cannot use.
var ErrInvalidOption = option.ErrInvalid

// DefaultTimeout bounds one object's evaluation unless [WithTimeout] says otherwise.
const DefaultTimeout = 10 * time.Second

// ErrTimeout is wrapped by the error of an evaluation that ran past the policy's
// timeout ([WithTimeout]).
var ErrTimeout = errors.New("rego evaluation timed out")

// ErrBadMessage is wrapped by the error of a rule whose message is neither a string
// nor an object with a string msg (conftest's rule), or a value that holds none.
var ErrBadMessage = errors.New("rule message is not a string or an object with a string msg")

// ErrNoRules is wrapped by the error for a policy with no deny, violation or warn
// rule in any of its namespaces: it would allow everything.
var ErrNoRules = errors.New("no deny, violation or warn rules")

// Level says whether a finding denies or warns.
type Level string

// The levels of findings.
const (
	// Deny comes from deny and violation rules.
	Deny Level = "deny"
	// Warn comes from warn rules: it never denies.
	Warn Level = "warn"
)

// Finding is one message of one rule about one object.
type Finding struct {
	// Object is the object judged; zero for a predicate.
	Object deploy.ObjectRef
	// Namespace is the Rego package of the rule ("main").
	Namespace string
	// Rule is the rule's name (deny, violation_root, warn_owner).
	Rule string
	// Level is [Deny] for deny and violation rules, [Warn] for warn rules.
	Level Level
	// Message is the rule's message (its msg); a rule that is just true has none.
	Message string
	// Metadata holds the other keys of an object message, nil for a string.
	Metadata map[string]any
}

// RuleID names the rule as gate reasons do: "rego:" and the namespace and rule
// ("rego:main.deny").
func (f Finding) RuleID() string { return "rego:" + f.Namespace + "." + f.Rule }

// String prints "[rego:main.deny] Kind/namespace/name: message".
func (f Finding) String() string {
	msg := f.Message
	if msg == "" {
		msg = "rule " + f.Rule + " is true"
	}
	if f.Object == (deploy.ObjectRef{}) {
		return "[" + f.RuleID() + "] " + msg
	}
	return "[" + f.RuleID() + "] " + f.Object.String() + ": " + msg
}

// Result is what a policy found in a set of objects, in the order of the objects,
// then of the namespaces, the rules (by name) and the messages.
type Result struct {
	Findings []Finding
}

// Passed reports whether no finding denies (warnings pass).
func (r *Result) Passed() bool {
	return r != nil && !slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Level == Deny })
}

// Module is one Rego source file.
type Module struct {
	// Name is the file name errors name (file:line).
	Name string
	// Source is the Rego text.
	Source string
}

// Option configures a [Policy].
type Option func(*config)

type config struct {
	namespaces  []string
	timeout     time.Duration
	concurrency int
	data        map[string]any
	v0          bool
	errs        option.List
}

var namespaceRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// WithNamespaces names the Rego packages whose rules judge (default "main"), as
// conftest's --namespace does; "k8s.security" is package k8s.security.
func WithNamespaces(ns ...string) Option {
	return func(c *config) {
		if len(ns) == 0 {
			c.errs.Addf("WithNamespaces(): want at least one namespace")
		}
		for _, n := range ns {
			if !namespaceRE.MatchString(n) {
				c.errs.Addf("WithNamespaces(%q): not a Rego package path", n)
			}
		}
		c.namespaces = append(c.namespaces, ns...)
	}
}

// WithTimeout bounds one object's (or predicate's) evaluation (default
// [DefaultTimeout]); past it the evaluation fails with [ErrTimeout].
func WithTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.errs.Addf("WithTimeout(%s): want a positive duration", d)
		}
		c.timeout = d
	}
}

// WithConcurrency bounds how many objects are evaluated at once (default
// GOMAXPROCS).
func WithConcurrency(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.errs.Addf("WithConcurrency(%d): want at least 1", n)
		}
		c.concurrency = n
	}
}

// WithData gives the policies base documents under data (conftest's --data): a
// policy reads data.allowed_registries from {"allowed_registries": [...]}. The map
// is copied through JSON when the policy is compiled.
func WithData(data map[string]any) Option {
	return func(c *config) {
		b, err := json.Marshal(data)
		if err != nil {
			c.errs.Addf("WithData: not JSON: %v", err)
			return
		}
		var copied map[string]any
		_ = json.Unmarshal(b, &copied) // it was just marshalled
		c.data = copied
	}
}

// WithRegoV0 parses the modules as Rego v0 (deny[msg] { ... } without if and
// contains), for policies written before OPA 1.0; the default is Rego v1.
func WithRegoV0() Option { return func(c *config) { c.v0 = true } }

// Policy is a compiled set of Rego modules. It is immutable and safe for concurrent
// use.
type Policy struct {
	query       oparego.PreparedEvalQuery
	rules       []rule // in binding order
	namespaces  []string
	timeout     time.Duration
	concurrency int
	digest      string
}

// rule is one judging rule and the query variable that holds its value.
type rule struct {
	namespace, name, binding string
	level                    Level
}

var ruleRE = regexp.MustCompile(`^(deny|violation|warn)(_[A-Za-z0-9_]+)?$`)

// Compile parses and compiles the modules once. A module that does not parse or
// compile is a [*CompileError] naming each problem's file:line; a policy with no
// judging rule is [ErrNoRules]; bad options wrap [ErrInvalidOption].
func Compile(ctx context.Context, modules []Module, opts ...Option) (*Policy, error) {
	c := config{timeout: DefaultTimeout, concurrency: runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(&c)
	}
	if err := c.errs.Err("rego"); err != nil {
		return nil, err
	}
	if len(c.namespaces) == 0 {
		c.namespaces = []string{"main"}
	}
	if len(modules) == 0 {
		return nil, fmt.Errorf("rego: no modules: %w", ErrNoRules)
	}
	version := ast.RegoV1
	if c.v0 {
		version = ast.RegoV0
	}
	parsed := map[string]*ast.Module{}
	var problems []Problem
	for _, m := range modules {
		if _, dup := parsed[m.Name]; dup {
			return nil, fmt.Errorf("rego: two modules named %s", m.Name)
		}
		mod, err := ast.ParseModuleWithOpts(m.Name, m.Source, ast.ParserOptions{RegoVersion: version, ProcessAnnotation: true})
		if err != nil {
			problems = append(problems, problemsOf(m.Name, err)...)
			continue
		}
		parsed[m.Name] = mod
	}
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(version)
	if compiler.Compile(parsed); compiler.Failed() {
		return nil, &CompileError{Problems: problemsOf("", compiler.Errors)}
	}

	p := &Policy{namespaces: c.namespaces, timeout: c.timeout, concurrency: c.concurrency}
	p.rules = judgingRules(parsed, c.namespaces)
	if len(p.rules) == 0 {
		return nil, fmt.Errorf("rego: packages %s: %w", strings.Join(c.namespaces, ", "), ErrNoRules)
	}
	// One query for every judging rule of every namespace. Each binding collects the
	// rule's value into an array of zero or one element, so a complete rule that is
	// undefined for an object leaves the others defined.
	parts := make([]string, len(p.rules))
	for i, r := range p.rules {
		parts[i] = fmt.Sprintf("%s := [v | v := data.%s.%s]", r.binding, r.namespace, r.name)
	}
	ropts := []func(*oparego.Rego){
		oparego.Query(strings.Join(parts, "; ")),
		oparego.Compiler(compiler),
		oparego.SetRegoVersion(ast.RegoV1),
	}
	if c.data != nil {
		ropts = append(ropts, oparego.Data(c.data))
	}
	q, err := oparego.New(ropts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("rego: prepare the query: %w", err)
	}
	p.query = q
	p.digest = digest(modules, c)
	return p, nil
}

// judgingRules returns the deny, violation and warn rules of the namespaces, by
// namespace in the order given, then by name.
func judgingRules(mods map[string]*ast.Module, namespaces []string) []rule {
	var out []rule
	for _, ns := range namespaces {
		names := map[string]bool{}
		for _, m := range mods {
			if strings.TrimPrefix(m.Package.Path.String(), "data.") != ns {
				continue
			}
			for _, r := range m.Rules {
				ref := r.Head.Ref()
				if len(ref) == 0 {
					continue
				}
				name, ok := ref[0].Value.(ast.Var)
				if ok && ruleRE.MatchString(string(name)) {
					names[string(name)] = true
				}
			}
		}
		sorted := make([]string, 0, len(names))
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		for _, n := range sorted {
			level := Deny
			if strings.HasPrefix(n, "warn") {
				level = Warn
			}
			out = append(out, rule{namespace: ns, name: n, level: level, binding: fmt.Sprintf("r%d", len(out))})
		}
	}
	return out
}

func digest(modules []Module, c config) string {
	h := sha256.New()
	sorted := slices.Clone(modules)
	slices.SortFunc(sorted, func(a, b Module) int { return strings.Compare(a.Name, b.Name) })
	for _, m := range sorted {
		fmt.Fprintf(h, "%d:%s%d:%s", len(m.Name), m.Name, len(m.Source), m.Source)
	}
	data, _ := json.Marshal(c.data) // copied through JSON already
	fmt.Fprintf(h, "ns=%s v0=%t data=%s", strings.Join(c.namespaces, ","), c.v0, data)
	return hex.EncodeToString(h.Sum(nil))
}

// Digest identifies what the policy checks: the SHA-256 of its modules (by name),
// namespaces, Rego version and data.
func (p *Policy) Digest() string { return p.digest }

// LoadFiles reads the Rego files at paths (a directory: every .rego file below it,
// except conftest's and OPA's *_test.rego) and compiles them.
func LoadFiles(ctx context.Context, paths []string, opts ...Option) (*Policy, error) {
	var modules []Module
	if err := files().ReadPaths(ctx, paths, addModule(&modules)); err != nil {
		return nil, err
	}
	return Compile(ctx, modules, opts...)
}

// LoadFS compiles every .rego file of fsys (an embed.FS, for example), except
// *_test.rego; errors name the files by their paths in fsys.
func LoadFS(ctx context.Context, fsys fs.FS, opts ...Option) (*Policy, error) {
	var modules []Module
	if err := files().ReadFS(ctx, fsys, addModule(&modules)); err != nil {
		return nil, err
	}
	return Compile(ctx, modules, opts...)
}

// files reads Rego modules: below a directory, the .rego files except *_test.rego.
func files() policyfile.Reader {
	return policyfile.Reader{Engine: "rego", Want: func(path string) bool {
		return strings.HasSuffix(path, ".rego") && !strings.HasSuffix(path, "_test.rego")
	}}
}

func addModule(modules *[]Module) func(name string, data []byte) error {
	return func(name string, data []byte) error {
		*modules = append(*modules, Module{Name: name, Source: string(data)})
		return nil
	}
}

// Eval judges each object with the policy, up to [WithConcurrency] at once, and
// returns every finding. The error is for an object the policy could not judge (an
// evaluation error, [ErrTimeout], [ErrBadMessage]), naming the object; the first
// one stops the objects still to start.
func (p *Policy) Eval(ctx context.Context, objs []*unstructured.Unstructured) (*Result, error) {
	per := make([][]Finding, len(objs))
	errs := make([]error, len(objs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(p.concurrency, len(objs)) {
		wg.Go(func() {
			for i := range next {
				ref := deploy.RefOf(objs[i])
				found, err := p.eval(ctx, objs[i].Object)
				if err != nil {
					errs[i] = fmt.Errorf("rego: %s: %w", ref, err)
					cancel()
					continue
				}
				for j := range found {
					found[j].Object = ref
				}
				per[i] = found
			}
		})
	}
feed:
	for i := range objs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	var first []error
	for _, err := range errs {
		if err != nil && (len(first) == 0 || !errors.Is(err, context.Canceled)) {
			first = append(first, err)
		}
	}
	if len(first) > 0 {
		return nil, errors.Join(first...)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rego: %w", err)
	}
	res := &Result{}
	for _, found := range per {
		res.Findings = append(res.Findings, found...)
	}
	return res, nil
}

// eval judges one input within the policy's timeout.
func (p *Policy) eval(ctx context.Context, input any) ([]Finding, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	value, err := ast.InterfaceToValue(input)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	ectx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	rs, err := p.query.Eval(ectx, oparego.EvalParsedInput(value))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if ectx.Err() != nil {
			return nil, fmt.Errorf("%w after %s", ErrTimeout, p.timeout)
		}
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("evaluate: %d results, want 1", len(rs))
	}
	var out []Finding
	for _, r := range p.rules {
		vals, _ := rs[0].Bindings[r.binding].([]any)
		for _, v := range vals {
			found, err := findings(r, v)
			if err != nil {
				return nil, err
			}
			out = append(out, found...)
		}
	}
	return out, nil
}

// findings reads a rule's value: a set or array of messages, one message, or a
// boolean.
func findings(r rule, v any) ([]Finding, error) {
	items := []any{v}
	if list, ok := v.([]any); ok {
		items = list
	}
	var out []Finding
	for _, it := range items {
		f := Finding{Namespace: r.namespace, Rule: r.name, Level: r.level}
		switch m := it.(type) {
		case string:
			f.Message = m
		case bool:
			if !m {
				continue
			}
		case map[string]any:
			msg, ok := m["msg"].(string)
			if !ok {
				return nil, fmt.Errorf("rule %s.%s: %w (msg is %s)", r.namespace, r.name, ErrBadMessage, typeName(m["msg"]))
			}
			f.Message = msg
			for k, val := range m {
				if k == "msg" {
					continue
				}
				if f.Metadata == nil {
					f.Metadata = map[string]any{}
				}
				f.Metadata[k] = val
			}
		default:
			return nil, fmt.Errorf("rule %s.%s: %w (got %s)", r.namespace, r.name, ErrBadMessage, typeName(it))
		}
		out = append(out, f)
	}
	return out, nil
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "missing"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, int, int64, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// Check judges the objects (see [Policy.Eval]) as a deploy gate's object policy
// (deploy/gate.WithObjectPolicy): deny and violation findings are reasons of code
// deploy.ReasonPolicy, warn findings warnings, each with the object and the rule
// ("rego:main.deny").
func (p *Policy) Check(ctx context.Context, objs []*unstructured.Unstructured) (*deploy.Decision, error) {
	res, err := p.Eval(ctx, objs)
	if err != nil {
		return nil, err
	}
	d := &deploy.Decision{}
	for _, f := range res.Findings {
		msg := f.Message
		if msg == "" {
			msg = "rule " + f.Rule + " is true"
		}
		r := deploy.Reason{Object: f.Object, Rule: f.RuleID()}
		r.Code = deploy.ReasonPolicy
		r.Message = "[" + f.RuleID() + "] " + msg
		if f.Level == Warn {
			d.Warn(r)
		} else {
			d.Deny(r)
		}
	}
	return d, nil
}

// Problem is one error of a module, where it is.
type Problem struct {
	File         string
	Line, Column int
	Message      string
}

// String prints "file:line:column: message".
func (p Problem) String() string {
	if p.File == "" {
		return p.Message
	}
	return fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Column, p.Message)
}

// CompileError is the error for modules that do not parse or compile; each problem
// names its file and line.
type CompileError struct {
	Problems []Problem
}

// Error lists the problems, one a line.
func (e *CompileError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.String()
	}
	return "rego: compile: " + strings.Join(msgs, "\n")
}

// problemsOf reads OPA's errors: ast.Errors with locations, or one error.
func problemsOf(file string, err error) []Problem {
	var astErrs ast.Errors
	if errors.As(err, &astErrs) {
		out := make([]Problem, 0, len(astErrs))
		for _, e := range astErrs {
			p := Problem{File: file, Message: e.Code + ": " + e.Message}
			if e.Location != nil {
				if e.Location.File != "" {
					p.File = e.Location.File
				}
				p.Line, p.Column = e.Location.Row, e.Location.Col
			}
			out = append(out, p)
		}
		return out
	}
	return []Problem{{File: file, Message: err.Error()}}
}
