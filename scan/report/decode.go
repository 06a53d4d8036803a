package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Format names a vulnerability report format that [Decode] reads.
type Format string

// The formats [Decode] reads.
const (
	// FormatShipkit is the JSON a [Report] marshals to ([Report.WriteJSON]).
	FormatShipkit Format = "shipkit"
	// FormatGrype is grype's JSON output (grype -o json): matches[] with a
	// vulnerability, its relatedVulnerabilities and the matched artifact.
	FormatGrype Format = "grype"
	// FormatTrivy is Trivy's JSON output (trivy image -f json, schema version 2), also
	// the scanner.result of trivy -f cosign-vuln: Results[].Vulnerabilities[].
	FormatTrivy Format = "trivy"
)

// ErrUnreadable is matched (errors.Is) by every error of [Decode]: the document is
// not a report Decode can read with certainty. A gate must treat it as a denial,
// never as a report without findings.
var ErrUnreadable = errors.New("vulnerability report cannot be read")

// DecodeError says why [Decode] cannot read a document. Its message names the
// format and what is missing or wrong, never the document's values.
type DecodeError struct {
	// Format is the format the document looks like, empty when it looks like none.
	Format Format
	// Problem says what is wrong, e.g. `no "descriptor"`.
	Problem string
	// Err is the JSON error underneath, if any.
	Err error
}

// Error says which format and what is wrong.
func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString(ErrUnreadable.Error())
	if e.Format != "" {
		b.WriteString(": " + string(e.Format) + " report")
	}
	b.WriteString(": " + e.Problem)
	if e.Err != nil {
		b.WriteString(": " + jsonProblem(e.Err))
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrUnreadable) true, and exposes the JSON error.
func (e *DecodeError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrUnreadable}
	}
	return []error{ErrUnreadable, e.Err}
}

// jsonProblem describes a JSON error without the document's bytes: a syntax error
// by its offset, a type error by its field and types.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	var sn *SeverityNameError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te) && te.Field == "":
		return "the document is a JSON " + te.Value
	case errors.As(err, &te):
		return fmt.Sprintf("field %s is a JSON %s, want %s", te.Field, te.Value, te.Type)
	case errors.As(err, &sn):
		return "a severity is not one of Unknown, Negligible, Low, Medium, High, Critical"
	default:
		return "invalid JSON"
	}
}

// Decode reads a vulnerability report in one of the formats people attest —
// shipkit's own JSON ([FormatShipkit]), grype's JSON ([FormatGrype]) and Trivy's
// JSON ([FormatTrivy]) — recognised by their shape, and records the format in
// [Report.Format]. Tool.FinishedOn dates the report when the document says when it
// was made (grype's descriptor.timestamp, Trivy's CreatedAt, shipkit's
// scanner.finishedOn).
//
// What it cannot read with certainty is a *[DecodeError] (errors.Is
// [ErrUnreadable]), never an empty report: null, {}, a document of another shape or
// of more than one, a format's document without its required keys (shipkit: target
// and findings; grype: matches and descriptor; Trivy: SchemaVersion 2 and Results),
// a finding without its identifier or package, or a severity word none of the
// formats use. A missing severity is Unknown only where the format says so (grype
// omits it when it has no metadata: the most severe related vulnerability's
// severity counts then).
func Decode(b []byte) (*Report, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, &DecodeError{Problem: "not a JSON object", Err: err}
	}
	if top == nil {
		return nil, &DecodeError{Problem: "the document is null"}
	}
	var looks []Format
	for _, f := range []struct {
		format Format
		keys   []string
	}{
		{FormatShipkit, []string{"findings", "target"}},
		{FormatGrype, []string{"matches", "descriptor"}},
		{FormatTrivy, []string{"SchemaVersion", "Results", "ArtifactName"}},
	} {
		if slices.ContainsFunc(f.keys, func(k string) bool { _, ok := top[k]; return ok }) {
			looks = append(looks, f.format)
		}
	}
	switch len(looks) {
	case 0:
		if len(top) == 0 {
			return nil, &DecodeError{Problem: "the document is an empty object"}
		}
		return nil, &DecodeError{Problem: "not a shipkit, grype or Trivy report (none of their keys)"}
	case 1:
	default:
		return nil, &DecodeError{Problem: fmt.Sprintf("has keys of several formats (%s)", joinFormats(looks))}
	}
	var (
		r   *Report
		err error
	)
	switch looks[0] {
	case FormatShipkit:
		r, err = decodeShipkit(b, top)
	case FormatGrype:
		r, err = decodeGrype(b, top)
	default:
		r, err = decodeTrivy(b, top)
	}
	if err != nil {
		return nil, err
	}
	r.Format = looks[0]
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	return r, nil
}

func joinFormats(fs []Format) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// need checks that top has each key, and that it is not null unless nullable.
func need(f Format, top map[string]json.RawMessage, keys ...string) error {
	for _, k := range keys {
		v, ok := top[k]
		if !ok {
			return &DecodeError{Format: f, Problem: fmt.Sprintf("no %q", k)}
		}
		if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return &DecodeError{Format: f, Problem: fmt.Sprintf("%q is null", k)}
		}
	}
	return nil
}

// shipkitFinding is a Finding whose severity must be present.
type shipkitFinding struct {
	Finding
	Severity *Severity `json:"severity"`
}

func decodeShipkit(b []byte, top map[string]json.RawMessage) (*Report, error) {
	if _, ok := top["findings"]; !ok { // null is how an empty report was written
		return nil, &DecodeError{Format: FormatShipkit, Problem: `no "findings"`}
	}
	if err := need(FormatShipkit, top, "target"); err != nil {
		return nil, err
	}
	var doc struct {
		Report
		Findings   []shipkitFinding `json:"findings"`
		Suppressed []struct {
			Finding shipkitFinding `json:"finding"`
			By      string         `json:"by"`
			Reason  string         `json:"reason"`
		} `json:"suppressed"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, &DecodeError{Format: FormatShipkit, Problem: "does not decode", Err: err}
	}
	if doc.Target == "" {
		return nil, &DecodeError{Format: FormatShipkit, Problem: "empty target"}
	}
	r := doc.Report
	r.Findings, r.Suppressed = nil, nil
	for i, f := range doc.Findings {
		if f.ID == "" || f.Severity == nil {
			return nil, &DecodeError{Format: FormatShipkit, Problem: fmt.Sprintf("finding %d has no id or no severity", i+1)}
		}
		f.Finding.Severity = *f.Severity
		r.Findings = append(r.Findings, f.Finding)
	}
	for _, s := range doc.Suppressed {
		if s.Finding.Severity != nil {
			s.Finding.Finding.Severity = *s.Finding.Severity
		}
		r.Suppressed = append(r.Suppressed, Suppression{Finding: s.Finding.Finding, By: s.By, Reason: s.Reason})
	}
	return &r, nil
}
