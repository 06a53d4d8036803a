package vap

import (
	"fmt"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	"k8s.io/apiserver/pkg/cel/environment"
)

// compile builds a policy's validator as the API server's plugin does
// (validating.compilePolicy, which is unexported): the same compiler, CEL
// environment and evaluators from the plugin's packages.
func compile(p *admissionregistrationv1.ValidatingAdmissionPolicy) validating.Validator {
	hasParam := p.Spec.ParamKind != nil
	optionalVars := plugincel.OptionalVariableDeclarations{HasParams: hasParam, HasAuthorizer: true}
	expressionOptionalVars := plugincel.OptionalVariableDeclarations{HasParams: hasParam, HasAuthorizer: false}
	failurePolicy := p.Spec.FailurePolicy
	compiler, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		return validating.NewValidator(nil, nil, nil, nil, failurePolicy, err)
	}
	compiler.CompileAndStoreVariables(variables(p), optionalVars, environment.StoredExpressions)
	var matcher matchconditions.Matcher
	if mcs := p.Spec.MatchConditions; len(mcs) > 0 {
		accessors := make([]plugincel.ExpressionAccessor, len(mcs))
		for i := range mcs {
			accessors[i] = (*matchconditions.MatchCondition)(&mcs[i])
		}
		matcher = matchconditions.NewMatcher(compiler.CompileCondition(accessors, optionalVars, environment.StoredExpressions), failurePolicy, "policy", "validate", p.Name)
	}
	return validating.NewValidator(
		compiler.CompileCondition(validations(p), optionalVars, environment.StoredExpressions),
		matcher,
		compiler.CompileCondition(auditAnnotations(p), optionalVars, environment.StoredExpressions),
		compiler.CompileCondition(messageExpressions(p), expressionOptionalVars, environment.StoredExpressions),
		failurePolicy,
		nil,
	)
}

func variables(p *admissionregistrationv1.ValidatingAdmissionPolicy) []plugincel.NamedExpressionAccessor {
	out := make([]plugincel.NamedExpressionAccessor, len(p.Spec.Variables))
	for i, v := range p.Spec.Variables {
		out[i] = &validating.Variable{Name: v.Name, Expression: v.Expression}
	}
	return out
}

func validations(p *admissionregistrationv1.ValidatingAdmissionPolicy) []plugincel.ExpressionAccessor {
	out := make([]plugincel.ExpressionAccessor, len(p.Spec.Validations))
	for i, v := range p.Spec.Validations {
		out[i] = &validating.ValidationCondition{Expression: v.Expression, Message: v.Message, Reason: v.Reason}
	}
	return out
}

func messageExpressions(p *admissionregistrationv1.ValidatingAdmissionPolicy) []plugincel.ExpressionAccessor {
	out := make([]plugincel.ExpressionAccessor, len(p.Spec.Validations))
	for i, v := range p.Spec.Validations {
		if v.MessageExpression != "" {
			out[i] = &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}
		}
	}
	return out
}

func auditAnnotations(p *admissionregistrationv1.ValidatingAdmissionPolicy) []plugincel.ExpressionAccessor {
	out := make([]plugincel.ExpressionAccessor, len(p.Spec.AuditAnnotations))
	for i, a := range p.Spec.AuditAnnotations {
		out[i] = &validating.AuditAnnotationCondition{Key: a.Key, ValueExpression: a.ValueExpression}
	}
	return out
}

// compileProblems compiles each expression of p as the API server validates a new
// policy (environment.NewExpressions) and returns those that fail.
func compileProblems(p *admissionregistrationv1.ValidatingAdmissionPolicy) []Problem {
	hasParam := p.Spec.ParamKind != nil
	withAuthz := plugincel.OptionalVariableDeclarations{HasParams: hasParam, HasAuthorizer: true}
	noAuthz := plugincel.OptionalVariableDeclarations{HasParams: hasParam, HasAuthorizer: false}
	compiler, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		return []Problem{{Policy: p.Name, Message: err.Error()}}
	}
	var out []Problem
	check := func(field string, acc plugincel.ExpressionAccessor, opts plugincel.OptionalVariableDeclarations) {
		if r := compiler.CompileCELExpression(acc, opts, environment.NewExpressions); r.Error != nil {
			out = append(out, Problem{Policy: p.Name, Field: field, Expression: acc.GetExpression(), Message: r.Error.Detail})
		}
	}
	for i, v := range p.Spec.Variables {
		field := fmt.Sprintf("spec.variables[%d].expression", i)
		if r := compiler.CompileAndStoreVariable(&validating.Variable{Name: v.Name, Expression: v.Expression}, withAuthz, environment.NewExpressions); r.Error != nil {
			out = append(out, Problem{Policy: p.Name, Field: field, Expression: v.Expression, Message: r.Error.Detail})
		}
	}
	for i := range p.Spec.MatchConditions {
		check(fmt.Sprintf("spec.matchConditions[%d].expression", i), (*matchconditions.MatchCondition)(&p.Spec.MatchConditions[i]), withAuthz)
	}
	for i, v := range p.Spec.Validations {
		check(fmt.Sprintf("spec.validations[%d].expression", i), &validating.ValidationCondition{Expression: v.Expression}, withAuthz)
		if v.MessageExpression != "" {
			check(fmt.Sprintf("spec.validations[%d].messageExpression", i), &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}, noAuthz)
		}
	}
	for i, a := range p.Spec.AuditAnnotations {
		check(fmt.Sprintf("spec.auditAnnotations[%d].valueExpression", i), &validating.AuditAnnotationCondition{Key: a.Key, ValueExpression: a.ValueExpression}, withAuthz)
	}
	return out
}

// Problem is one expression of a policy that does not compile.
type Problem struct {
	Policy     string
	Field      string // spec.validations[0].expression
	Expression string
	Message    string
}

// String prints "policy p: field: message".
func (p Problem) String() string {
	if p.Field == "" {
		return fmt.Sprintf("policy %s: %s", p.Policy, p.Message)
	}
	return fmt.Sprintf("policy %s: %s: %s", p.Policy, p.Field, p.Message)
}

// CompileError is the error for policies whose CEL does not compile.
type CompileError struct {
	Problems []Problem
}

// Error lists the problems, one a line.
func (e *CompileError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.String()
	}
	return "vap: CEL does not compile: " + strings.Join(msgs, "\n")
}
