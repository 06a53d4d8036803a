package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON, the shape [Report] marshals to.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report JSON: %w", err)
	}
	return nil
}

// sorted returns the findings, most severe first, then by package and ID.
func (r *Report) sorted() []Finding {
	out := append([]Finding(nil), r.Findings...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.ID < b.ID
	})
	return out
}

// WriteTable writes the findings as a plain text table, most severe first, in the
// columns of grype's table: NAME, INSTALLED, FIXED IN, TYPE, VULNERABILITY, SEVERITY.
// A report without findings writes "No vulnerabilities found". Suppressed findings
// are counted on a last line.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if len(r.Findings) == 0 {
		fmt.Fprintln(tw, "No vulnerabilities found")
	} else {
		fmt.Fprintln(tw, "NAME\tINSTALLED\tFIXED IN\tTYPE\tVULNERABILITY\tSEVERITY")
		for _, f := range r.sorted() {
			fixed := strings.Join(f.FixedIn, ", ")
			if fixed == "" && f.FixState == FixStateWontFix {
				fixed = "(won't fix)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", cell(f.Package), cell(f.Version), cell(fixed), cell(f.Type), cell(f.ID), f.Severity)
		}
	}
	if n := len(r.Suppressed); n > 0 {
		fmt.Fprintf(tw, "(%d suppressed by VEX or ignore rules)\n", n)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report table: %w", err)
	}
	return nil
}

// cell keeps a table cell on one line and one column.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// SARIF 2.1.0, the subset GitHub code scanning reads.
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID               string         `json:"id"`
		Name             string         `json:"name"`
		ShortDescription sarifText      `json:"shortDescription"`
		FullDescription  sarifText      `json:"fullDescription"`
		HelpURI          string         `json:"helpUri,omitempty"`
		Help             sarifHelp      `json:"help"`
		Properties       sarifRuleProps `json:"properties"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifHelp struct {
		Text     string `json:"text"`
		Markdown string `json:"markdown"`
	}
	sarifRuleProps struct {
		SecuritySeverity string   `json:"security-severity"`
		Tags             []string `json:"tags"`
	}
	sarifResult struct {
		RuleID    string          `json:"ruleId"`
		RuleIndex int             `json:"ruleIndex"`
		Level     string          `json:"level"`
		Message   sarifText       `json:"message"`
		Locations []sarifLocation `json:"locations"`
	}
	sarifLocation struct {
		PhysicalLocation sarifPhysical `json:"physicalLocation"`
	}
	sarifPhysical struct {
		ArtifactLocation sarifArtifact `json:"artifactLocation"`
		Region           sarifRegion   `json:"region"`
	}
	sarifArtifact struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
)

// securitySeverity is the score GitHub sorts alerts by: the highest CVSS base score,
// else a score in the middle of the severity's CVSS band.
func securitySeverity(f Finding) string {
	if s := f.MaxCVSS(); s > 0 {
		return strconv.FormatFloat(s, 'f', 1, 64)
	}
	switch f.Severity {
	case Critical:
		return "9.5"
	case High:
		return "8.0"
	case Medium:
		return "5.5"
	case Low:
		return "2.0"
	default:
		return "0.0"
	}
}

// sarifLevel maps a severity to a SARIF result level.
func sarifLevel(s Severity) string {
	switch {
	case s >= High:
		return "error"
	case s == Medium:
		return "warning"
	default:
		return "note"
	}
}

// WriteSARIF writes the findings as a SARIF 2.1.0 log in the shape GitHub code
// scanning accepts: one rule per vulnerability and package (with the
// security-severity property GitHub ranks by) and one result per finding, located
// at the path in the image where the package was found (the target when unknown).
func (r *Report) WriteSARIF(w io.Writer) error {
	driver := sarifDriver{Name: "shipkit", InformationURI: "https://github.com/shipkit/shipkit", Rules: []sarifRule{}}
	if r.Tool != nil {
		driver.Name, driver.Version = "shipkit ("+r.Tool.Name+")", r.Tool.Version
	}
	results := []sarifResult{}
	for _, f := range r.sorted() {
		id := f.ID + "-" + f.Package
		fix := "No fix is available yet."
		if len(f.FixedIn) > 0 {
			fix = "Upgrade " + f.Package + " to " + strings.Join(f.FixedIn, " or ") + "."
		}
		desc := f.Description
		if desc == "" {
			desc = f.ID + " in " + f.Package
		}
		help := fmt.Sprintf("Vulnerability %s\nSeverity: %s\nPackage: %s@%s (%s)\nFixed in: %s\n%s",
			f.ID, f.Severity, f.Package, f.Version, f.Type, strings.Join(f.FixedIn, ", "), fix)
		md := fmt.Sprintf("| Vulnerability | Severity | Package | Installed | Fixed in | Type |\n| --- | --- | --- | --- | --- | --- |\n| %s | %s | %s | %s | %s | %s |\n\n%s",
			f.ID, f.Severity, f.Package, f.Version, strings.Join(f.FixedIn, ", "), f.Type, fix)
		driver.Rules = append(driver.Rules, sarifRule{
			ID:               id,
			Name:             "Vulnerability",
			ShortDescription: sarifText{Text: fmt.Sprintf("%s %s vulnerability in %s %s", f.ID, f.Severity, f.Package, f.Version)},
			FullDescription:  sarifText{Text: desc},
			HelpURI:          f.DataSource,
			Help:             sarifHelp{Text: help, Markdown: md},
			Properties: sarifRuleProps{
				SecuritySeverity: securitySeverity(f),
				Tags:             []string{"security", "vulnerability", strings.ToLower(f.Severity.String())},
			},
		})
		loc := r.Target
		if len(f.Locations) > 0 {
			loc = f.Locations[0]
		}
		loc = strings.TrimPrefix(loc, "/")
		if loc == "" {
			loc = "image"
		}
		results = append(results, sarifResult{
			RuleID:    id,
			RuleIndex: len(driver.Rules) - 1,
			Level:     sarifLevel(f.Severity),
			Message: sarifText{Text: fmt.Sprintf("%s@%s (%s) in %s is affected by %s (%s). %s",
				f.Package, f.Version, f.Type, r.Target, f.ID, f.Severity, fix)},
			Locations: []sarifLocation{{PhysicalLocation: sarifPhysical{
				ArtifactLocation: sarifArtifact{URI: loc},
				Region:           sarifRegion{StartLine: 1},
			}}},
		})
	}
	log := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs:    []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("write SARIF: %w", err)
	}
	return nil
}
