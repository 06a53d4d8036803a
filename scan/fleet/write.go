package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/shipkit/shipkit/scan/report"
)

// MaxReportSize bounds what [ReadJSON] reads: 256 MiB.
const MaxReportSize = 256 << 20

// ErrReportTooLarge is wrapped by [ReadJSON]'s error for a document past
// [MaxReportSize].
var ErrReportTooLarge = errors.New("fleet report too large")

// WriteJSON writes the report as indented JSON; [ReadJSON] reads it back.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write fleet report: %w", err)
	}
	return nil
}

// ReadJSON reads a report [Report.WriteJSON] wrote (at most [MaxReportSize]
// bytes), to [Compare] with or to pass as [Options.Previous].
func ReadJSON(rd io.Reader) (*Report, error) {
	b, err := io.ReadAll(io.LimitReader(rd, MaxReportSize+1))
	if err != nil {
		return nil, fmt.Errorf("read fleet report: %w", err)
	}
	if len(b) > MaxReportSize {
		return nil, fmt.Errorf("read fleet report: more than %d bytes: %w", MaxReportSize, ErrReportTooLarge)
	}
	var r Report
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("read fleet report: %w", err)
	}
	return &r, nil
}

// WriteTable writes one line per advisory and package (severity, fix versions,
// how many images and the workloads affected), then the images not checked from a
// verified SBOM with their status, then the changes since the previous report.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADVISORY\tSEVERITY\tPACKAGE\tVERSION\tFIXED IN\tIMAGES\tWORKLOADS")
	for _, a := range r.Advisories {
		type row struct {
			images    map[string]bool
			workloads []string
			fixed     []string
		}
		var order []string
		rows := map[string]*row{}
		for _, af := range a.Affected {
			k := af.Package + "\t" + af.Version
			rw := rows[k]
			if rw == nil {
				rw = &row{images: map[string]bool{}}
				rows[k] = rw
				order = append(order, k)
			}
			rw.images[af.Image] = true
			for _, v := range af.FixedIn {
				rw.fixed = appendNew(rw.fixed, v)
			}
			for _, wl := range af.Workloads {
				rw.workloads = appendNew(rw.workloads, wl.String())
			}
		}
		for _, k := range order {
			rw := rows[k]
			wls := rw.workloads
			if len(wls) > 3 {
				wls = append(wls[:3:3], fmt.Sprintf("and %d more", len(rw.workloads)-3))
			}
			pkg, ver, _ := strings.Cut(k, "\t")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", cell(a.ID), a.Severity, cell(pkg), cell(ver),
				cell(strings.Join(rw.fixed, ", ")), len(rw.images), cell(strings.Join(wls, ", ")))
		}
	}
	if un := r.Unverified(); len(un) > 0 {
		fmt.Fprintf(tw, "\nNOT CHECKED FROM A VERIFIED SBOM (%d)\tSTATUS\tREASON\n", len(un))
		for _, s := range un {
			reason := ""
			if len(s.Reasons) > 0 {
				reason = s.Reasons[0].Message
			}
			status := string(s.Status)
			if s.Source == SourceLayers {
				status += " (scanned from layers)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", cell(s.Image), status, cell(reason))
		}
	}
	if len(r.Unresolved) > 0 {
		fmt.Fprintf(tw, "\nUNRESOLVED (%d)\tREASON\n", len(r.Unresolved))
		for _, u := range r.Unresolved {
			fmt.Fprintf(tw, "%s\t%s\n", cell(u.Image), cell(u.Reason))
		}
	}
	if d := r.Diff; d != nil {
		fmt.Fprintf(tw, "\nSINCE %s: %d new, %d fixed, %d unchecked\n", d.Previous.Format("2006-01-02 15:04"), len(d.New), len(d.Fixed), len(d.Unchecked))
		for _, l := range []struct {
			what string
			cs   []Change
		}{{"new", d.New}, {"fixed", d.Fixed}, {"unchecked", d.Unchecked}} {
			for _, c := range l.cs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s@%s\t%s\n", l.what, cell(c.Advisory), c.Severity, cell(c.Package), cell(c.Version), cell(c.Image))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write fleet report table: %w", err)
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

// WriteSARIF writes a SARIF 2.1.0 log with one run per affected image, each run
// what scan/report's writer writes for the image's findings (one rule per
// advisory and package, security-severity for GitHub), the image as the run's
// target and its workloads in the run's properties.
func (r *Report) WriteSARIF(w io.Writer) error {
	type imageRun struct {
		rep       *report.Report
		workloads map[string]bool
		list      []string
	}
	runs := map[string]*imageRun{}
	var order []string
	for _, a := range r.Advisories {
		for _, af := range a.Affected {
			target := af.Image
			if af.Platform != "" {
				target += " (" + af.Platform + ")"
			}
			ir := runs[target]
			if ir == nil {
				ir = &imageRun{rep: &report.Report{Target: target, Subject: af.Image, Platform: af.Platform, Tool: r.Scanner}, workloads: map[string]bool{}}
				runs[target] = ir
				order = append(order, target)
			}
			ir.rep.Findings = append(ir.rep.Findings, a.finding(af))
			for _, wl := range af.Workloads {
				if s := wl.String(); !ir.workloads[s] {
					ir.workloads[s] = true
					ir.list = append(ir.list, s)
				}
			}
		}
	}
	log := map[string]any{
		"$schema": "https://json.schemastore.org/sarif-2.1.0.json",
		"version": "2.1.0",
		"runs":    []any{},
	}
	var all []any
	for _, target := range order {
		ir := runs[target]
		var buf bytes.Buffer
		if err := ir.rep.WriteSARIF(&buf); err != nil {
			return fmt.Errorf("write fleet SARIF: %w", err)
		}
		var one struct {
			Runs []map[string]any `json:"runs"`
		}
		if err := json.Unmarshal(buf.Bytes(), &one); err != nil {
			return fmt.Errorf("write fleet SARIF: %w", err)
		}
		for _, run := range one.Runs {
			run["properties"] = map[string]any{"image": ir.rep.Subject, "platform": ir.rep.Platform, "workloads": ir.list}
			run["automationDetails"] = map[string]any{"id": "shipkit-fleet/" + target}
			all = append(all, run)
		}
	}
	if all != nil {
		log["runs"] = all
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("write fleet SARIF: %w", err)
	}
	return nil
}
