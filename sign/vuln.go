package sign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/scan/report"
)

// cosignVuln is cosign's vulnerability predicate
// (https://cosign.sigstore.dev/attestation/vuln/v1, cosign's
// attestation.CosignVulnPredicate), field for field.
type cosignVuln struct {
	Invocation struct {
		Parameters any    `json:"parameters"`
		URI        string `json:"uri"`
		EventID    string `json:"event_id"`
		BuilderID  string `json:"builder.id"`
	} `json:"invocation"`
	Scanner struct {
		URI     string `json:"uri"`
		Version string `json:"version"`
		DB      struct {
			URI     string `json:"uri"`
			Version string `json:"version"`
		} `json:"db"`
		Result json.RawMessage `json:"result"`
	} `json:"scanner"`
	Metadata struct {
		ScanStartedOn  time.Time `json:"scanStartedOn"`
		ScanFinishedOn time.Time `json:"scanFinishedOn"`
	} `json:"metadata"`
}

// VulnPredicate returns cosign's vulnerability predicate
// (https://cosign.sigstore.dev/attestation/vuln/v1) of a scan report: the report,
// as JSON, is scanner.result; r.Tool gives scanner.uri, .version, .db and the scan
// times (metadata.scanStartedOn, .scanFinishedOn). r.Subject, when set, becomes the
// predicate's [Predicate.Subject], so attesting it with an index's digest puts it on
// the platform image that was scanned.
//
// A report without a scan time (r.Tool.FinishedOn) is refused: a gate could not
// tell how old it is, and [VulnRule] denies such a report.
func VulnPredicate(r *report.Report) (Predicate, error) {
	if r == nil {
		return Predicate{}, errors.New("vulnerability predicate: no report")
	}
	t := r.Tool
	if t == nil || t.FinishedOn.IsZero() {
		return Predicate{}, errors.New("vulnerability predicate: the report has no scan time (Tool.FinishedOn): a gate cannot tell how old it is")
	}
	var subject v1.Hash
	if r.Subject != "" {
		h, err := v1.NewHash(r.Subject)
		if err != nil {
			return Predicate{}, fmt.Errorf("vulnerability predicate: report subject: %w", err)
		}
		subject = h
	}
	result, err := json.Marshal(r)
	if err != nil {
		return Predicate{}, fmt.Errorf("vulnerability predicate: encode report: %w", err)
	}
	var v cosignVuln
	v.Scanner.URI, v.Scanner.Version = t.URI, t.Version
	v.Scanner.DB.URI, v.Scanner.DB.Version = t.DBURI, t.DBSchema
	if !t.DBBuilt.IsZero() {
		v.Scanner.DB.Version = strings.TrimSpace(v.Scanner.DB.Version + " built " + t.DBBuilt.UTC().Format(time.RFC3339))
	}
	v.Scanner.Result = result
	v.Metadata.ScanStartedOn, v.Metadata.ScanFinishedOn = t.StartedOn.UTC(), t.FinishedOn.UTC()
	b, err := json.Marshal(v)
	if err != nil {
		return Predicate{}, fmt.Errorf("vulnerability predicate: %w", err)
	}
	return Predicate{Type: PredicateVuln, Body: b, Subject: subject}, nil
}

// DecodeVulnPredicate reads the body of a vulnerability attestation
// ([PredicateVuln]) into a report. The body is cosign's vulnerability predicate
// whose scanner.result is a report [report.Decode] reads (shipkit's, grype's or
// Trivy's JSON: trivy --format cosign-vuln writes exactly this), or such a report on
// its own (as cosign attest --type with the predicate type's URI attaches a file).
// The predicate's scanner and metadata fill the report's Tool; metadata.scanFinishedOn
// dates the report when it is set.
//
// What cannot be read with certainty is an error matching report.ErrUnreadable,
// never an empty report: among others a predicate whose scanner.result is null, as
// cosign attest --type vuln leaves it when given a bare grype or Trivy report.
func DecodeVulnPredicate(body []byte) (*report.Report, error) {
	r, _, err := decodeVuln(body)
	return r, err
}

// decodeVuln is DecodeVulnPredicate that also returns the predicate's
// metadata.scanFinishedOn when it can be read, even when the report cannot.
func decodeVuln(body []byte) (*report.Report, time.Time, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, time.Time{}, &report.DecodeError{Problem: "the predicate is not a JSON object"}
	}
	var scanner map[string]json.RawMessage
	if json.Unmarshal(top["scanner"], &scanner) != nil || scanner == nil {
		r, err := report.Decode(body) // a report attested as the predicate itself
		if err != nil {
			return nil, time.Time{}, err
		}
		return r, dateOf(r), nil
	}
	if _, ok := scanner["result"]; !ok {
		return nil, time.Time{}, &report.DecodeError{Problem: `cosign vulnerability predicate without "scanner.result"`}
	}
	var v cosignVuln
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, time.Time{}, &report.DecodeError{Problem: "cosign vulnerability predicate does not decode", Err: err}
	}
	finished := v.Metadata.ScanFinishedOn
	if res := bytes.TrimSpace(v.Scanner.Result); len(res) == 0 || bytes.Equal(res, []byte("null")) {
		return nil, finished, &report.DecodeError{Problem: "cosign vulnerability predicate whose scanner.result is null " +
			"(cosign attest --type vuln keeps only the predicate's own fields: put the scanner's report in scanner.result)"}
	}
	r, err := report.Decode(v.Scanner.Result)
	if err != nil {
		return nil, finished, fmt.Errorf("scanner.result: %w", err)
	}
	if r.Tool == nil {
		r.Tool = &report.Tool{}
	}
	t := r.Tool
	t.URI = or(v.Scanner.URI, t.URI)
	t.Version = or(t.Version, v.Scanner.Version)
	t.DBURI = or(t.DBURI, v.Scanner.DB.URI)
	t.DBSchema = or(t.DBSchema, v.Scanner.DB.Version)
	if t.Name == "" {
		t.Name = toolName(t.URI)
	}
	if !v.Metadata.ScanStartedOn.IsZero() {
		t.StartedOn = v.Metadata.ScanStartedOn
	}
	if !finished.IsZero() {
		t.FinishedOn = finished
	}
	return r, dateOf(r), nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// toolName reads a scanner's name from its package URL: "trivy" from
// "pkg:github/aquasecurity/trivy@v0.58.1".
func toolName(purl string) string {
	s, _, _ := strings.Cut(purl, "@")
	if i := strings.LastIndex(s, "/"); i >= 0 {
		return s[i+1:]
	}
	return ""
}

func dateOf(r *report.Report) time.Time {
	if r == nil || r.Tool == nil {
		return time.Time{}
	}
	return r.Tool.FinishedOn
}
