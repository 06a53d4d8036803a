package analysis

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The comparison operators of a [Condition].
const (
	OpAtLeast = ">="
	OpAtMost  = "<="
	OpAbove   = ">"
	OpBelow   = "<"
)

// Condition compares a measured value with a threshold, as in "result >= 0.99".
// The zero Condition is invalid: [Run] rejects a check whose Success is not set.
type Condition struct {
	// Op is one of ">=", "<=", ">" and "<".
	Op string
	// Value is the threshold the measured value is compared with.
	Value float64
}

// AtLeast is met by values greater than or equal to v.
func AtLeast(v float64) Condition { return Condition{Op: OpAtLeast, Value: v} }

// AtMost is met by values less than or equal to v.
func AtMost(v float64) Condition { return Condition{Op: OpAtMost, Value: v} }

// Above is met by values greater than v.
func Above(v float64) Condition { return Condition{Op: OpAbove, Value: v} }

// Below is met by values less than v.
func Below(v float64) Condition { return Condition{Op: OpBelow, Value: v} }

// Met reports whether v meets the condition. NaN and ±Inf never do, and neither
// does any value when the condition is invalid.
func (c Condition) Met(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	switch c.Op {
	case OpAtLeast:
		return v >= c.Value
	case OpAtMost:
		return v <= c.Value
	case OpAbove:
		return v > c.Value
	case OpBelow:
		return v < c.Value
	}
	return false
}

// String returns the condition as "result >= 0.99", the form [ParseCondition] reads.
func (c Condition) String() string {
	return "result " + c.Op + " " + strconv.FormatFloat(c.Value, 'g', -1, 64)
}

// validate reports an unknown operator or a threshold that no value can be compared with.
func (c Condition) validate() error {
	switch c.Op {
	case OpAtLeast, OpAtMost, OpAbove, OpBelow:
	case "":
		return fmt.Errorf("no operator (want one of >=, <=, >, <)")
	default:
		return fmt.Errorf("operator %q: want one of >=, <=, >, <", c.Op)
	}
	if math.IsNaN(c.Value) || math.IsInf(c.Value, 0) {
		return fmt.Errorf("threshold %v: want a finite number", c.Value)
	}
	return nil
}

// ParseCondition reads a condition written as "result >= 0.99" (the word "result" is
// optional: ">= 0.99" is the same), the form configuration files and Terraform
// attributes carry.
func ParseCondition(s string) (Condition, error) {
	rest := strings.TrimSpace(s)
	rest = strings.TrimSpace(strings.TrimPrefix(rest, "result"))
	var c Condition
	for _, op := range []string{OpAtLeast, OpAtMost, OpAbove, OpBelow} { // two-character operators first
		if strings.HasPrefix(rest, op) {
			c.Op, rest = op, strings.TrimSpace(rest[len(op):])
			break
		}
	}
	if c.Op == "" {
		return Condition{}, fmt.Errorf("analysis: condition %q: want \"result OP NUMBER\" with OP one of >=, <=, >, <", s)
	}
	v, err := strconv.ParseFloat(rest, 64)
	if err != nil {
		return Condition{}, fmt.Errorf("analysis: condition %q: threshold %q is not a number", s, rest)
	}
	c.Value = v
	if err := c.validate(); err != nil {
		return Condition{}, fmt.Errorf("analysis: condition %q: %w", s, err)
	}
	return c, nil
}
