package job

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/vuln"
)

// scanDB is the open vulnerability database and where it came from.
type scanDB struct {
	scanner *vuln.DB
	from    string // "embedded advisories (N)" or the path given
}

// scan matches every platform's SBOM against the vulnerability database, loaded
// once: one report per platform image (each attested to its image by the sign
// stage), and a merged view of them for the summary and the findings table.
func (j *Job) scan(ctx context.Context) (string, error) {
	if err := j.need("SBOM", len(j.SBOMs) > 0 && j.Digest.DigestStr() != ""); err != nil {
		return "", err
	}
	db, err := j.openDB(ctx)
	if err != nil {
		return "", err
	}
	j.Reports = make([]*scan.Report, len(j.SBOMs))
	for i, s := range j.SBOMs {
		p := "image " + short(s.Subject.String())
		if s.Platform != nil {
			p = s.Platform.String()
		}
		if j.Reports[i], err = db.scanner.Scan(ctx, s); err != nil {
			return "", fmt.Errorf("scanning %s: %w", p, err)
		}
	}
	j.Report = merge(j.Digest.String(), j.Reports)
	verdict := "passes"
	if j.Report.FailOn(j.cfg.FailOn) != nil {
		verdict = "fails"
	}
	return fmt.Sprintf("%s against %s; %s fail-on %s", countFindings(j.Report), db.from,
		verdict, strings.ToLower(j.cfg.FailOn.String())), nil
}

// openDB opens the database at DB, or writes the embedded advisories into a
// temporary one first. The scanner stays open until Close.
func (j *Job) openDB(ctx context.Context) (*scanDB, error) {
	if j.scanner != nil {
		return j.scanner, nil
	}
	root, from := j.cfg.DB, j.cfg.DB
	if root == "" {
		dir, err := os.MkdirTemp("", "shipkit-vulndb-")
		if err != nil {
			return nil, fmt.Errorf("temporary vulnerability database: %w", err)
		}
		j.cleanup = append(j.cleanup, func() { _ = os.RemoveAll(dir) })
		var n int
		if err := j.step(observe.StageScan, "write vulnerability database", func() error {
			n, err = WriteAdvisoryDB(ctx, dir)
			return err
		}); err != nil {
			return nil, err
		}
		root, from = dir, fmt.Sprintf("%d embedded advisories", n)
	}
	s, err := vuln.Open(ctx, root, vuln.WithLogger(j.log), vuln.WithObserver(j.obs))
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s: %w", from, err)
	}
	j.cleanup = append(j.cleanup, func() { _ = s.Close() })
	j.scanner = &scanDB{scanner: s, from: from}
	return j.scanner, nil
}

// merge joins the reports of the platform images into one view for people: a
// finding of the same advisory in the same package and version counts once. It is
// never attested: each platform's own report is.
func merge(target string, reports []*scan.Report) *scan.Report {
	out := &scan.Report{Target: target, Findings: []scan.Finding{}}
	seen := map[string]int{}
	for _, r := range reports {
		if out.Tool == nil {
			out.Tool = r.Tool
		}
		for _, f := range r.Findings {
			key := f.ID + "\x00" + f.Type + "\x00" + f.Package + "\x00" + f.Version
			if i, ok := seen[key]; ok {
				for _, l := range f.Locations {
					if !slices.Contains(out.Findings[i].Locations, l) {
						out.Findings[i].Locations = append(out.Findings[i].Locations, l)
					}
				}
				continue
			}
			seen[key] = len(out.Findings)
			out.Findings = append(out.Findings, f)
		}
		out.Suppressed = append(out.Suppressed, r.Suppressed...)
	}
	return out
}

// countFindings says "1 finding (1 High)" or "no findings".
func countFindings(r *scan.Report) string {
	if len(r.Findings) == 0 {
		return "no findings"
	}
	by := map[report.Severity]int{}
	for _, f := range r.Findings {
		by[f.Severity]++
	}
	var parts []string
	for s := report.Critical; s >= report.Unknown; s-- {
		if by[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", by[s], s))
		}
	}
	noun := "findings"
	if len(r.Findings) == 1 {
		noun = "finding"
	}
	return fmt.Sprintf("%d %s (%s)", len(r.Findings), noun, strings.Join(parts, ", "))
}

// WriteFindings writes the merged report as a table, most severe first.
func (j *Job) WriteFindings(w io.Writer) error {
	if j.Report == nil {
		return nil
	}
	return j.Report.WriteTable(w)
}
