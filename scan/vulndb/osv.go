package vulndb

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	syftpkg "github.com/anchore/syft/syft/pkg"
)

// osvRecord is the part of the OSV schema (https://ossf.github.io/osv-schema/) that
// FromOSV reads.
type osvRecord struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases"`
	Summary  string   `json:"summary"`
	Details  string   `json:"details"`
	Severity []struct {
		Type  string `json:"type"`
		Score string `json:"score"`
	} `json:"severity"`
	Affected []struct {
		Package struct {
			Ecosystem string `json:"ecosystem"`
			Name      string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Type   string              `json:"type"`
			Events []map[string]string `json:"events"`
		} `json:"ranges"`
		EcosystemSpecific struct {
			Imports []struct {
				Path    string   `json:"path"`
				Symbols []string `json:"symbols"`
				GOOS    []string `json:"goos"`
				GOARCH  []string `json:"goarch"`
			} `json:"imports"`
		} `json:"ecosystem_specific"`
	} `json:"affected"`
	References []struct {
		URL string `json:"url"`
	} `json:"references"`
	DatabaseSpecific json.RawMessage `json:"database_specific"`
	Withdrawn        string          `json:"withdrawn"`
}

// osvEcosystems maps OSV ecosystem names to syft package types.
var osvEcosystems = map[string]syftpkg.Type{
	"Go":        syftpkg.GoModulePkg,
	"npm":       syftpkg.NpmPkg,
	"PyPI":      syftpkg.PythonPkg,
	"Maven":     syftpkg.JavaPkg,
	"crates.io": syftpkg.RustPkg,
	"RubyGems":  syftpkg.GemPkg,
	"NuGet":     syftpkg.DotnetPkg,
	"Packagist": syftpkg.PhpComposerPkg,
	"Debian":    syftpkg.DebPkg,
	"Alpine":    syftpkg.ApkPkg,
	"Ubuntu":    syftpkg.DebPkg,
}

// FromOSV reads OSV JSON (https://ossf.github.io/osv-schema/) from r: one
// document, a JSON array of documents, or documents one after another (JSON
// Lines, or files concatenated), and returns one [Record] per affected package.
// Withdrawn advisories give no records.
//
// Of each document it reads id, aliases, summary (details when there is no
// summary), references, database_specific.severity, severity[] entries of type
// CVSS_V2, CVSS_V3 and CVSS_V4, and for each affected[] entry the package and its
// SEMVER and ECOSYSTEM ranges, whose introduced/fixed/last_affected/limit events
// become [Range] values; GIT ranges name commits, not versions, and are skipped.
// Of Go advisories it also reads ecosystem_specific.imports (packages, symbols,
// goos, goarch) into [Record.Imports].
// The ecosystems are Go, npm, PyPI, Maven, crates.io, RubyGems, NuGet, Packagist
// and the distributions "Debian:12", "Ubuntu:22.04:LTS" and "Alpine:v3.18".
// Unknown fields are ignored. A document without an id, with no affected package,
// with an ecosystem it does not know or with no usable range is an error that
// names the document (its position and id) and the field; nothing is returned
// then, so a bad feed is not half loaded.
func FromOSV(r io.Reader) ([]Record, error) {
	br := bufio.NewReader(r)
	first, err := peekNonSpace(br)
	if errors.Is(err, io.EOF) {
		return nil, errors.New("parse OSV: no document")
	}
	if err != nil {
		return nil, fmt.Errorf("parse OSV: %w", err)
	}
	dec := json.NewDecoder(br)
	var docs []json.RawMessage
	if first == '[' {
		if err := dec.Decode(&docs); err != nil {
			return nil, fmt.Errorf("parse OSV JSON array: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, errors.New("parse OSV: data after the JSON array")
		}
	} else {
		for n := 0; ; n++ {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("parse OSV JSON document %d: %w", n, err)
			}
			docs = append(docs, raw)
		}
	}
	var out []Record
	for i, raw := range docs {
		rs, err := ParseOSV(raw)
		if err != nil {
			if len(docs) > 1 {
				return nil, fmt.Errorf("OSV document %d: %w", i, err)
			}
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

// peekNonSpace skips JSON white space and returns the next byte, unread.
func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return b, br.UnreadByte()
	}
}

// ParseOSV parses one OSV JSON document into one [Record] per affected package, as
// [FromOSV] does; a withdrawn advisory gives none.
func ParseOSV(data []byte) ([]Record, error) {
	var doc osvRecord
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse OSV JSON: %w", err)
	}
	if doc.ID == "" {
		return nil, fmt.Errorf("parse OSV: record has no id")
	}
	if doc.Withdrawn != "" {
		return nil, nil
	}
	if len(doc.Affected) == 0 {
		return nil, fmt.Errorf("parse OSV %s: no affected packages", doc.ID)
	}
	var dbSeverity string
	if len(doc.DatabaseSpecific) > 0 {
		var ds struct {
			Severity any `json:"severity"`
		}
		if err := json.Unmarshal(doc.DatabaseSpecific, &ds); err == nil && ds.Severity != nil {
			s, ok := ds.Severity.(string)
			if !ok {
				return nil, fmt.Errorf("parse OSV %s: database_specific.severity is not a string", doc.ID)
			}
			dbSeverity = s
		}
	}
	severity, err := normalizeSeverity(dbSeverity)
	if err != nil {
		return nil, fmt.Errorf("parse OSV %s: database_specific.severity: %w", doc.ID, err)
	}
	cvss, err := osvCVSS(doc)
	if err != nil {
		return nil, fmt.Errorf("parse OSV %s: %w", doc.ID, err)
	}
	description := strings.TrimSpace(doc.Summary)
	if description == "" {
		description = strings.TrimSpace(doc.Details)
	}
	var urls []string
	for _, ref := range doc.References {
		if u := strings.TrimSpace(ref.URL); u != "" {
			urls = append(urls, u)
		}
	}

	records := make([]Record, 0, len(doc.Affected))
	for i, a := range doc.Affected {
		pkgType, distro, err := osvEcosystem(a.Package.Ecosystem)
		if err != nil {
			return nil, fmt.Errorf("parse OSV %s: affected[%d]: %w", doc.ID, i, err)
		}
		if a.Package.Name == "" {
			return nil, fmt.Errorf("parse OSV %s: affected[%d]: package has no name", doc.ID, i)
		}
		var ranges []Range
		for j, r := range a.Ranges {
			if r.Type != "SEMVER" && r.Type != "ECOSYSTEM" {
				continue // GIT ranges name commits, not versions
			}
			rs, err := osvRanges(r.Events)
			if err != nil {
				return nil, fmt.Errorf("parse OSV %s: affected[%d].ranges[%d]: %w", doc.ID, i, j, err)
			}
			ranges = append(ranges, rs...)
		}
		if len(ranges) == 0 {
			return nil, fmt.Errorf("parse OSV %s: affected[%d] (%s): no SEMVER or ECOSYSTEM range", doc.ID, i, a.Package.Name)
		}
		rec := Record{
			ID:          doc.ID,
			Aliases:     doc.Aliases,
			Type:        string(pkgType),
			Distro:      distro,
			Package:     a.Package.Name,
			Ranges:      ranges,
			Severity:    severity,
			CVSS:        cvss,
			Description: description,
			URLs:        urls,
		}
		if pkgType == syftpkg.GoModulePkg {
			for _, imp := range a.EcosystemSpecific.Imports {
				rec.Imports = append(rec.Imports, GoImport{Path: imp.Path, Symbols: imp.Symbols, GOOS: imp.GOOS, GOARCH: imp.GOARCH})
			}
		}
		if err := rec.validate(); err != nil {
			return nil, fmt.Errorf("parse OSV %s: affected[%d]: %w", doc.ID, i, err)
		}
		records = append(records, rec)
	}
	return records, nil
}

// osvEcosystem returns the syft package type and the distro ("debian:12") of an OSV
// ecosystem such as "Go" or "Debian:12".
func osvEcosystem(ecosystem string) (syftpkg.Type, string, error) {
	name, release, hasRelease := strings.Cut(ecosystem, ":")
	t, ok := osvEcosystems[name]
	if !ok {
		return "", "", fmt.Errorf("unsupported OSV ecosystem %q", ecosystem)
	}
	if t != syftpkg.DebPkg && t != syftpkg.ApkPkg {
		if hasRelease {
			return "", "", fmt.Errorf("unsupported OSV ecosystem %q", ecosystem)
		}
		return t, "", nil
	}
	// "Debian:12", "Alpine:v3.18", "Ubuntu:22.04:LTS", "Ubuntu:Pro:18.04:LTS":
	// the release is the first part that starts with a digit.
	var version string
	for _, part := range strings.Split(release, ":") {
		part = strings.TrimPrefix(part, "v")
		if part != "" && part[0] >= '0' && part[0] <= '9' {
			version = part
			break
		}
	}
	if version == "" {
		return "", "", fmt.Errorf("OSV ecosystem %q has no release (want e.g. %q)", ecosystem, name+":12")
	}
	return t, strings.ToLower(name) + ":" + version, nil
}

// osvRanges turns the events of one OSV range into version ranges.
func osvRanges(events []map[string]string) ([]Range, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("range has no events")
	}
	var out []Range
	lower, open := "", false
	for k, ev := range events {
		if len(ev) != 1 {
			return nil, fmt.Errorf("event %d: want exactly one of introduced, fixed, last_affected, limit", k)
		}
		for kind, v := range ev {
			if v == "" {
				return nil, fmt.Errorf("event %d: empty %s version", k, kind)
			}
			switch kind {
			case "introduced":
				lower, open = v, true
				if v == "0" {
					lower = ""
				}
			case "fixed", "last_affected", "limit":
				if !open {
					return nil, fmt.Errorf("event %d: %s %q without introduced", k, kind, v)
				}
				op := map[string]string{"fixed": "< ", "last_affected": "<= ", "limit": "< "}[kind]
				r := Range{Vulnerable: joinBounds(lower, op+v)}
				if kind == "fixed" {
					r.FixedIn = v
				}
				out = append(out, r)
				lower, open = "", false
			default:
				return nil, fmt.Errorf("event %d: unknown event %q", k, kind)
			}
		}
	}
	if open {
		out = append(out, Range{Vulnerable: joinBounds(lower, "")})
	}
	return out, nil
}

// joinBounds builds a grype constraint from an optional lower bound (inclusive) and an
// optional upper bound expression.
func joinBounds(lower, upper string) string {
	switch {
	case lower == "":
		return upper
	case upper == "":
		return ">= " + lower
	default:
		return ">= " + lower + ", " + upper
	}
}

// osvCVSS returns the CVSS vectors of an OSV record.
func osvCVSS(doc osvRecord) ([]CVSS, error) {
	var out []CVSS
	for i, s := range doc.Severity {
		if !strings.HasPrefix(s.Type, "CVSS_V") {
			continue
		}
		version := strings.TrimPrefix(s.Type, "CVSS_V")
		if prefix, rest, ok := strings.Cut(s.Score, "/"); ok && strings.HasPrefix(prefix, "CVSS:") && rest != "" {
			version = strings.TrimPrefix(prefix, "CVSS:")
		} else if s.Type != "CVSS_V2" {
			return nil, fmt.Errorf("severity[%d]: %s score %q is not a CVSS vector", i, s.Type, s.Score)
		}
		out = append(out, CVSS{Version: version, Vector: s.Score})
	}
	return out, nil
}
