package suppress

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/shipkit/shipkit/scan/report"
)

// Rule ignores the findings it matches until it expires. A finding matches when
// every field that is set matches: ID (the finding's ID or one of its aliases),
// Package (name), Version, Type (syft package type) and FixState. A rule must set at
// least one of ID, Package and FixState, and give a Reason.
type Rule struct {
	ID       string `json:"id,omitempty"`
	Package  string `json:"package,omitempty"`
	Version  string `json:"version,omitempty"`
	Type     string `json:"type,omitempty"`
	FixState string `json:"fix-state,omitempty"`
	// Reason says why the finding may be ignored; it is kept in the report.
	Reason string `json:"reason"`
	// Expires is when the rule stops ignoring anything; zero means never. A date
	// without a time ("2026-03-31") expires at the end of that day, UTC.
	Expires Date `json:"expires,omitzero"`
}

// Date is a point in time that reads "2026-03-31" (end of that day, UTC) or an
// RFC 3339 time.
type Date struct{ time.Time }

// UnmarshalJSON reads a date or an RFC 3339 time.
func (d *Date) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		d.Time = time.Time{}
		return nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		d.Time = t.Add(24*time.Hour - time.Nanosecond)
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("expiry %q is neither a date (2006-01-02) nor an RFC 3339 time", s)
	}
	d.Time = t
	return nil
}

// MarshalJSON writes the time in RFC 3339.
func (d Date) MarshalJSON() ([]byte, error) {
	return []byte(`"` + d.UTC().Format(time.RFC3339Nano) + `"`), nil
}

// Validate reports what is wrong with the rule.
func (r Rule) Validate() error {
	if r.ID == "" && r.Package == "" && r.FixState == "" {
		return errors.New("rule matches everything: set id, package or fix-state")
	}
	if strings.TrimSpace(r.Reason) == "" {
		return errors.New("rule has no reason")
	}
	switch r.FixState {
	case "", report.FixStateFixed, report.FixStateNotFixed, report.FixStateWontFix, report.FixStateUnknown:
	default:
		return fmt.Errorf("unknown fix-state %q (want %s, %s, %s or %s)", r.FixState,
			report.FixStateFixed, report.FixStateNotFixed, report.FixStateWontFix, report.FixStateUnknown)
	}
	return nil
}

// Expired says whether the rule no longer applies at now.
func (r Rule) Expired(now time.Time) bool { return !r.Expires.IsZero() && now.After(r.Expires.Time) }

// Matches says whether the rule, unexpired at now, matches f.
func (r Rule) Matches(f report.Finding, now time.Time) bool {
	if r.Expired(now) {
		return false
	}
	if r.ID != "" && !containsFold(f.Names(), r.ID) {
		return false
	}
	if r.Package != "" && r.Package != f.Package {
		return false
	}
	if r.Version != "" && r.Version != f.Version {
		return false
	}
	if r.Type != "" && r.Type != f.Type {
		return false
	}
	if r.FixState != "" && r.FixState != f.FixState {
		return false
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// Rules is a list of ignore rules; it is a [Filter].
type Rules []Rule

// Suppresses reports the first unexpired rule that matches f.
func (rs Rules) Suppresses(_ string, f report.Finding, now time.Time) (by, reason string, ok bool) {
	for i, r := range rs {
		if r.Matches(f, now) {
			return fmt.Sprintf("ignore rule %d", i+1), r.Reason, true
		}
	}
	return "", "", false
}

// rulesFile is the document ParseRules reads.
type rulesFile struct {
	Ignore []Rule `json:"ignore"`
}

// maxRulesSize bounds the documents ParseRules reads.
const maxRulesSize = 4 << 20

// ParseRules reads ignore rules from YAML (or JSON) of the form
//
//	ignore:
//	  - id: CVE-2023-4911
//	    package: libc6
//	    reason: not reachable, ld.so is not setuid here
//	    expires: 2026-03-31
//	  - fix-state: wont-fix
//	    reason: accepted by security review SR-12
//
// Unknown fields, rules that match everything or have no reason are errors.
func ParseRules(data []byte) (Rules, error) {
	if len(data) > maxRulesSize {
		return nil, fmt.Errorf("parse ignore rules: document of %d bytes exceeds %d", len(data), maxRulesSize)
	}
	var doc rulesFile
	if err := yaml.UnmarshalStrict(data, &doc); err != nil {
		return nil, fmt.Errorf("parse ignore rules: %w", err)
	}
	for i, r := range doc.Ignore {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("parse ignore rules: rule %d: %w", i+1, err)
		}
	}
	return Rules(doc.Ignore), nil
}
