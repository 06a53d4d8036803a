package suppress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/shipkit/shipkit/scan/report"
)

// The OpenVEX statuses.
const (
	StatusNotAffected        = "not_affected"
	StatusAffected           = "affected"
	StatusFixed              = "fixed"
	StatusUnderInvestigation = "under_investigation"
)

// VEX is an OpenVEX document (https://github.com/openvex/spec), v0.2.0 or the
// earlier v0.0.x shape; it is a [Filter]. Its statements with status not_affected or
// fixed suppress the findings they cover; when several statements cover a finding,
// the latest (by statement timestamp, else document order) decides.
type VEX struct {
	ID         string      `json:"@id"`
	Author     string      `json:"author,omitempty"`
	Timestamp  time.Time   `json:"timestamp,omitzero"`
	Statements []Statement `json:"statements"`
}

// Statement is one OpenVEX statement.
type Statement struct {
	// Vulnerability is the vulnerability's name (e.g. CVE-2023-4911) and aliases.
	Vulnerability Vulnerability `json:"vulnerability"`
	// Products are the products (and within them the subcomponents) it is about.
	Products      []Product `json:"products"`
	Status        string    `json:"status"`
	Justification string    `json:"justification,omitempty"`
	Impact        string    `json:"impact_statement,omitempty"`
	Timestamp     time.Time `json:"timestamp,omitzero"`
}

// Vulnerability names a vulnerability. In OpenVEX v0.0.x it was a plain string,
// which is read as the name.
type Vulnerability struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases,omitempty"`
}

// UnmarshalJSON reads an object or (v0.0.x) a string.
func (v *Vulnerability) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &v.Name)
	}
	type plain Vulnerability
	return json.Unmarshal(b, (*plain)(v))
}

// Product is a product of a statement, by @id (a purl such as
// pkg:oci/app@sha256%3A…, a bare image digest, or a package purl) and optionally the
// subcomponents (package purls) within it the statement is about.
type Product struct {
	ID            string      `json:"@id"`
	Subcomponents []Component `json:"subcomponents,omitempty"`
}

// Component is a subcomponent of a product.
type Component struct {
	ID string `json:"@id"`
}

// maxVEXSize bounds the documents ParseOpenVEX reads.
const maxVEXSize = 16 << 20

// ParseOpenVEX reads an OpenVEX JSON document. A document without statements, a
// statement without a vulnerability name, products or a known status, and unknown
// top-level JSON are errors.
func ParseOpenVEX(data []byte) (*VEX, error) {
	if len(data) > maxVEXSize {
		return nil, fmt.Errorf("parse OpenVEX: document of %d bytes exceeds %d", len(data), maxVEXSize)
	}
	var doc struct {
		Context string `json:"@context"`
		VEX
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse OpenVEX: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse OpenVEX: data after the document")
	}
	if !strings.HasPrefix(doc.Context, "https://openvex.dev/ns") {
		return nil, fmt.Errorf("parse OpenVEX: @context %q is not an OpenVEX context (https://openvex.dev/ns/…)", doc.Context)
	}
	if len(doc.Statements) == 0 {
		return nil, errors.New("parse OpenVEX: no statements")
	}
	for i, s := range doc.Statements {
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("parse OpenVEX %s: statement %d: %w", doc.ID, i+1, err)
		}
	}
	v := doc.VEX
	return &v, nil
}

func (s Statement) validate() error {
	if strings.TrimSpace(s.Vulnerability.Name) == "" {
		return errors.New("no vulnerability name")
	}
	if len(s.Products) == 0 {
		return errors.New("no products")
	}
	for _, p := range s.Products {
		if strings.TrimSpace(p.ID) == "" {
			return errors.New("product without @id")
		}
	}
	switch s.Status {
	case StatusNotAffected, StatusAffected, StatusFixed, StatusUnderInvestigation:
	default:
		return fmt.Errorf("unknown status %q", s.Status)
	}
	return nil
}

// Suppresses reports whether the latest statement about f in the product target
// says not_affected or fixed.
func (v *VEX) Suppresses(target string, f report.Finding, _ time.Time) (by, reason string, ok bool) {
	if v == nil {
		return "", "", false
	}
	var hits []int
	for i, s := range v.Statements {
		if s.covers(target, f) {
			hits = append(hits, i)
		}
	}
	if len(hits) == 0 {
		return "", "", false
	}
	sort.SliceStable(hits, func(a, b int) bool {
		return v.Statements[hits[a]].Timestamp.Before(v.Statements[hits[b]].Timestamp)
	})
	s := v.Statements[hits[len(hits)-1]]
	if s.Status != StatusNotAffected && s.Status != StatusFixed {
		return "", "", false
	}
	reason = s.Status
	if s.Justification != "" {
		reason += ": " + s.Justification
	}
	if s.Impact != "" {
		reason += " (" + s.Impact + ")"
	}
	by = "vex"
	if v.ID != "" {
		by += " " + v.ID
	}
	return by, reason, true
}

// covers says whether the statement is about f in the product target.
func (s Statement) covers(target string, f report.Finding) bool {
	names := append([]string{s.Vulnerability.Name}, s.Vulnerability.Aliases...)
	named := false
	for _, n := range names {
		if containsFold(f.Names(), strings.TrimSpace(n)) {
			named = true
			break
		}
	}
	if !named {
		return false
	}
	for _, p := range s.Products {
		switch {
		case purlMatches(p.ID, f.PURL):
			// the product is the package itself
			return true
		case productIs(p.ID, target):
			if len(p.Subcomponents) == 0 {
				return true
			}
			for _, c := range p.Subcomponents {
				if purlMatches(c.ID, f.PURL) {
					return true
				}
			}
		}
	}
	return false
}

// productIs says whether a product @id names the image target (a digest such as
// sha256:abc…): the @id is the digest itself, or an OCI purl or reference whose
// version is that digest.
func productIs(id, target string) bool {
	if target == "" || !strings.Contains(target, ":") {
		return id == target && id != ""
	}
	id, err := url.PathUnescape(id)
	if err != nil {
		return false
	}
	if q := strings.IndexAny(id, "?#"); q >= 0 {
		id = id[:q]
	}
	return id == target || strings.HasSuffix(id, "@"+target)
}

// purlMatches says whether the purl pattern covers the package purl: same type,
// namespace and name, and the same version unless the pattern has none.
// Qualifiers and subpaths are ignored.
func purlMatches(pattern, purl string) bool {
	if !strings.HasPrefix(pattern, "pkg:") || !strings.HasPrefix(purl, "pkg:") {
		return false
	}
	pn, pv := splitPURL(pattern)
	n, v := splitPURL(purl)
	return pn == n && (pv == "" || pv == v)
}

// splitPURL returns the purl without qualifiers and subpath, split into the part
// before the version and the version (unescaped, with a leading "v" dropped so
// that Go's v0.3.6 and 0.3.6 compare equal).
func splitPURL(p string) (name, version string) {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if i := strings.LastIndex(p, "@"); i >= 0 {
		name, version = p[:i], p[i+1:]
	} else {
		name = p
	}
	if u, err := url.PathUnescape(name); err == nil {
		name = u
	}
	if u, err := url.PathUnescape(version); err == nil {
		version = u
	}
	return strings.ToLower(name), strings.TrimPrefix(version, "v")
}
