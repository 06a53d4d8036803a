// Package reach decides, for each Go finding of a vulnerability report, whether
// the vulnerable code is in the binary at all, and says so in OpenVEX.
//
// grype reports every advisory of every module version linked into a Go binary;
// most name functions the binary never links. An [Analyzer] runs govulncheck's own
// code (golang.org/x/vuln/scan, binary mode, in process and offline) against a
// local database in govulncheck's format that scan/vulndb's WriteGo writes from
// the same OSV records as the grype database, and reads per advisory whether
// govulncheck found a vulnerable symbol in the binary's symbol table. [Analyzer.VEX]
// turns that into a not_affected / vulnerable_code_not_in_execute_path statement
// for each Go finding whose vulnerable symbols are in none of the binaries it was
// found in, with the evidence in the statement's impact; scan/suppress.Apply then
// moves those findings out of the report. A statement names the image and the
// finding's purl, not the binary, so it is written only when every finding it
// would cover (another binary linking the same module version, say) is not in its
// binaries either, and never for a finding without a purl.
//
// The verdict is conservative: a finding is left alone when govulncheck reports a
// vulnerable symbol (or, for a stripped binary, cannot tell and reports them all),
// when govulncheck does not know the advisory or the module version, and when a
// binary cannot be read.
package reach

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	govulncheck "golang.org/x/vuln/scan"

	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/suppress"
)

// Errors a caller may branch on with errors.Is.
var (
	// ErrInvalidOption: [New] was given an option it cannot use; the sentinel every
	// stage shares.
	ErrInvalidOption = option.ErrInvalid
	// ErrTooLarge: a binary is larger than [WithMaxBinarySize] allows.
	ErrTooLarge = errors.New("binary too large")
	// ErrNoDatabase: the directory given to [New] holds no database in
	// govulncheck's format (index/modules.json).
	ErrNoDatabase = errors.New("no Go vulnerability database")
)

// Justification is the OpenVEX justification of the statements [Analyzer.VEX] writes.
const Justification = "vulnerable_code_not_in_execute_path"

// DefaultMaxBinarySize is the largest binary [Analyzer.VEX] reads out of an image.
const DefaultMaxBinarySize = 512 << 20

// DefaultMaxOutput bounds govulncheck's JSON output for one binary.
const DefaultMaxOutput = 256 << 20

// Option configures [New].
type Option func(*config)

type config struct {
	log       *slog.Logger
	maxBinary int64
	maxOutput int64
	now       func() time.Time
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithMaxBinarySize sets the largest binary read out of an image (default
// [DefaultMaxBinarySize]); a larger one is not analyzed, and its findings stay.
// n < 1 is refused by [New].
func WithMaxBinarySize(n int64) Option { return func(c *config) { c.maxBinary = n } }

// WithMaxOutput bounds govulncheck's JSON output for one binary (default
// [DefaultMaxOutput]); n < 1 is refused by [New].
func WithMaxOutput(n int64) Option { return func(c *config) { c.maxOutput = n } }

// WithClock sets the clock for the statements' timestamps (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// Analyzer runs govulncheck in binary mode against one local database. It holds no
// other state and is safe for concurrent use.
type Analyzer struct {
	db  string // file:// URL
	dir string
	cfg config
}

// New returns an Analyzer reading the database in govulncheck's format in dir (as
// scan/vulndb.WriteGo writes it). Nothing is fetched over the network, ever.
func New(dir string, opts ...Option) (*Analyzer, error) {
	c := config{maxBinary: DefaultMaxBinarySize, maxOutput: DefaultMaxOutput, now: time.Now}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	var bad option.List
	if c.maxBinary < 1 {
		bad.Addf("WithMaxBinarySize(%d): want at least 1", c.maxBinary)
	}
	if c.maxOutput < 1 {
		bad.Addf("WithMaxOutput(%d): want at least 1", c.maxOutput)
	}
	if c.now == nil {
		bad.Addf("WithClock(nil)")
	}
	if err := bad.Err("reach"); err != nil {
		return nil, err
	}
	c.log = observe.OrDiscardLogger(c.log)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("reach: database %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(abs, "index", "modules.json")); err != nil {
		return nil, fmt.Errorf("reach: database %s: %w: %w", dir, ErrNoDatabase, err)
	}
	return &Analyzer{db: "file://" + filepath.ToSlash(abs), dir: abs, cfg: c}, nil
}

// Level is how deep govulncheck found an advisory in a binary.
type Level int

// The levels, shallowest first.
const (
	// LevelModule: a vulnerable version of the module is linked in, but none of the
	// advisory's packages.
	LevelModule Level = iota + 1
	// LevelPackage: one of the advisory's packages is linked in, but none of its
	// vulnerable symbols.
	LevelPackage
	// LevelSymbol: a vulnerable symbol is in the binary (or the binary is stripped
	// and govulncheck cannot tell): the code is reachable as far as a binary says.
	LevelSymbol
)

// String returns "module", "package" or "symbol".
func (l Level) String() string {
	switch l {
	case LevelModule:
		return "module"
	case LevelPackage:
		return "package"
	case LevelSymbol:
		return "symbol"
	}
	return "unknown"
}

// Binary is what govulncheck found in one Go binary.
type Binary struct {
	// Path is where the binary is (in the image, for [Analyzer.VEX]).
	Path string
	// GoVersion, GOOS and GOARCH are from the binary's build info.
	GoVersion, GOOS, GOARCH string
	// Scanner is govulncheck's name and version, e.g. "govulncheck@v1.9.0".
	Scanner string
	// Vulns are the advisories that affect a module version of the binary on its
	// platform, one per advisory and module (an advisory can name several modules,
	// e.g. golang.org/x/net and the copy of it in the standard library), sorted.
	Vulns []*Vuln
}

// Vuln is one advisory as govulncheck found it in a binary.
type Vuln struct {
	// ID and Aliases name the advisory.
	ID      string
	Aliases []string
	// Module and Version are the affected module as linked in.
	Module, Version string
	// Level is how deep it was found.
	Level Level
	// Found are the vulnerable symbols in the binary ("pkg.Func" or
	// "pkg.Type.Method"), at LevelSymbol.
	Found []string
	// Vulnerable are the symbols the advisory names for its packages (a bare
	// package path: the whole package).
	Vulnerable []string
}

// names returns the ID and aliases.
func (v *Vuln) names() []string { return append([]string{v.ID}, v.Aliases...) }

// File analyzes the Go binary at path on local disk.
func (a *Analyzer) File(ctx context.Context, file string) (*Binary, error) {
	out := &limitedBuffer{max: a.cfg.maxOutput}
	var stderr bytes.Buffer
	cmd := govulncheck.Command(ctx, "-mode=binary", "-format=json", "-db="+a.db, file)
	cmd.Stdout = out
	cmd.Stderr = &stderr
	cmd.Stdin = strings.NewReader("")
	cmd.Env = []string{"GOTELEMETRY=off", "GOFLAGS="}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("govulncheck %s: %w", file, err)
	}
	if err := cmd.Wait(); err != nil {
		if out.over {
			return nil, fmt.Errorf("govulncheck %s: output exceeds %d bytes", file, a.cfg.maxOutput)
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		if msg != "" {
			return nil, fmt.Errorf("govulncheck %s: %w (%s)", file, err, msg)
		}
		return nil, fmt.Errorf("govulncheck %s: %w", file, err)
	}
	if out.over {
		return nil, fmt.Errorf("govulncheck %s: output exceeds %d bytes", file, a.cfg.maxOutput)
	}
	b, err := parse(out.Bytes())
	if err != nil {
		return nil, fmt.Errorf("govulncheck %s: %w", file, err)
	}
	b.Path = file
	if bi, err := buildinfo.ReadFile(file); err == nil {
		for _, s := range bi.Settings {
			switch s.Key {
			case "GOOS":
				b.GOOS = s.Value
			case "GOARCH":
				b.GOARCH = s.Value
			}
		}
	}
	return b, nil
}

// The parts of govulncheck's JSON messages read here
// (golang.org/x/vuln/internal/govulncheck).
type message struct {
	Config *struct {
		ScannerName    string `json:"scanner_name"`
		ScannerVersion string `json:"scanner_version"`
	} `json:"config"`
	SBOM *struct {
		GoVersion string `json:"go_version"`
	} `json:"SBOM"`
	OSV *struct {
		ID       string   `json:"id"`
		Aliases  []string `json:"aliases"`
		Affected []struct {
			Package struct {
				Name string `json:"name"`
			} `json:"package"`
			EcosystemSpecific struct {
				Imports []struct {
					Path    string   `json:"path"`
					Symbols []string `json:"symbols"`
				} `json:"imports"`
			} `json:"ecosystem_specific"`
		} `json:"affected"`
	} `json:"osv"`
	Finding *struct {
		OSV   string `json:"osv"`
		Trace []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Package  string `json:"package"`
			Function string `json:"function"`
			Receiver string `json:"receiver"`
		} `json:"trace"`
	} `json:"finding"`
}

// parse reads govulncheck's JSON stream.
func parse(data []byte) (*Binary, error) {
	b := &Binary{}
	byKey := map[string]*Vuln{}
	type osvInfo struct {
		aliases    []string
		vulnerable map[string][]string // by module
	}
	osvs := map[string]osvInfo{}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read JSON output: %w", err)
		}
		switch {
		case m.Config != nil:
			b.Scanner = m.Config.ScannerName + "@" + m.Config.ScannerVersion
		case m.SBOM != nil:
			b.GoVersion = m.SBOM.GoVersion
		case m.OSV != nil:
			info := osvInfo{aliases: m.OSV.Aliases, vulnerable: map[string][]string{}}
			for _, a := range m.OSV.Affected {
				for _, imp := range a.EcosystemSpecific.Imports {
					if len(imp.Symbols) == 0 {
						info.vulnerable[a.Package.Name] = append(info.vulnerable[a.Package.Name], imp.Path)
					}
					for _, s := range imp.Symbols {
						info.vulnerable[a.Package.Name] = append(info.vulnerable[a.Package.Name], imp.Path+"."+s)
					}
				}
			}
			osvs[m.OSV.ID] = info
		case m.Finding != nil && len(m.Finding.Trace) > 0:
			f := m.Finding
			fr := f.Trace[0]
			key := f.OSV + "\x00" + fr.Module
			v, ok := byKey[key]
			if !ok {
				info := osvs[f.OSV]
				v = &Vuln{ID: f.OSV, Aliases: info.aliases, Module: fr.Module, Version: fr.Version,
					Vulnerable: info.vulnerable[fr.Module]}
				byKey[key] = v
				b.Vulns = append(b.Vulns, v)
			}
			lvl := LevelModule
			switch {
			case fr.Function != "":
				lvl = LevelSymbol
				sym := fr.Function
				if fr.Receiver != "" {
					sym = strings.TrimPrefix(fr.Receiver, "*") + "." + sym
				}
				if s := fr.Package + "." + sym; !slices.Contains(v.Found, s) {
					v.Found = append(v.Found, s)
				}
			case fr.Package != "":
				lvl = LevelPackage
			}
			if lvl > v.Level {
				v.Level = lvl
			}
		}
	}
	for _, v := range b.Vulns {
		sort.Strings(v.Found)
	}
	sort.Slice(b.Vulns, func(i, j int) bool {
		if b.Vulns[i].ID != b.Vulns[j].ID {
			return b.Vulns[i].ID < b.Vulns[j].ID
		}
		return b.Vulns[i].Module < b.Vulns[j].Module
	})
	return b, nil
}

// Verdict is what [Analyzer.VEX] decided about one finding.
type Verdict string

// The verdicts.
const (
	// NotInBinary: the vulnerable symbols are in none of the finding's binaries,
	// nor in those of any other finding the statement covers; a not_affected
	// statement was written.
	NotInBinary Verdict = "not_in_binary"
	// Present: govulncheck found a vulnerable symbol in a binary.
	Present Verdict = "present"
	// Unknown: no decision (govulncheck does not report the advisory for the module
	// version, or a binary could not be read), or no statement could be limited to
	// this finding (it has no purl, or a statement naming its advisory and purl
	// would also cover a finding that is not NotInBinary, e.g. the same module
	// version in another binary that calls the vulnerable code); the finding stays.
	Unknown Verdict = "unknown"
)

// Decision is the verdict on one Go finding, with why.
type Decision struct {
	Finding  report.Finding
	Verdict  Verdict
	Evidence string
}

// Result is what [Analyzer.VEX] found.
type Result struct {
	// VEX holds one not_affected statement per finding decided [NotInBinary]; nil
	// when there is none. Pass it to scan/suppress.Apply.
	VEX *suppress.VEX
	// Decisions are the verdicts on every Go finding of the report, in its order.
	Decisions []Decision
	// Binaries are the analyzed binaries, by path in the image.
	Binaries map[string]*Binary
	// Errors are the binaries that could not be analyzed, by path, with why.
	Errors map[string]error
}

// Count returns how many findings got verdict v.
func (r *Result) Count(v Verdict) int {
	n := 0
	for _, d := range r.Decisions {
		if d.Verdict == v {
			n++
		}
	}
	return n
}

// VEX decides, for every Go module finding of rep (type "go-module"), whether
// its vulnerable symbols are in the binaries it was found in (the finding's
// Locations), reading those binaries out of img, the image rep is about. The
// statements name rep.Target as the product and the finding's purl as the
// subcomponent; as scan/suppress matches them on the advisory and the purl only,
// one is written only when every finding of rep it covers is decided
// [NotInBinary], and none for a finding without a purl. A binary that cannot be read or analyzed leaves its findings
// alone ([Unknown]) and is listed in Result.Errors; only a cancelled context or an
// unreadable image is an error.
func (a *Analyzer) VEX(ctx context.Context, rep *report.Report, img v1.Image) (*Result, error) {
	if rep == nil {
		return nil, errors.New("reach: no report")
	}
	wanted := map[string]bool{}
	for _, f := range rep.Findings {
		if f.Type == "go-module" {
			for _, l := range f.Locations {
				wanted[path.Clean("/"+l)] = true
			}
		}
	}
	res := &Result{Binaries: map[string]*Binary{}, Errors: map[string]error{}}
	if len(wanted) > 0 {
		if img == nil {
			return nil, errors.New("reach: no image")
		}
		tmp, err := os.MkdirTemp("", "shipkit-reach-")
		if err != nil {
			return nil, fmt.Errorf("reach: %w", err)
		}
		defer os.RemoveAll(tmp)
		files, err := a.extract(ctx, img, wanted, tmp, res.Errors)
		if err != nil {
			return nil, err
		}
		for p := range wanted {
			if _, ok := files[p]; !ok {
				if _, failed := res.Errors[p]; !failed {
					res.Errors[p] = errors.New("not a regular file in the image")
				}
			}
		}
		paths := make([]string, 0, len(files))
		for p := range files {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("reach: %w", err)
			}
			b, err := a.File(ctx, files[p])
			if err != nil {
				if ctx.Err() != nil {
					return nil, fmt.Errorf("reach: %w", ctx.Err())
				}
				a.cfg.log.WarnContext(ctx, "govulncheck failed", "binary", p, "error", err)
				res.Errors[p] = err
				continue
			}
			b.Path = p
			res.Binaries[p] = b
		}
	}
	for _, f := range rep.Findings {
		if f.Type == "go-module" {
			res.Decisions = append(res.Decisions, a.decide(f, res))
		}
	}
	a.statements(rep, res, a.cfg.now().UTC())
	return res, nil
}

// statements writes res.VEX from the decisions. A statement names the image and
// the finding's purl, and scan/suppress matches it on the advisory's names and the
// purl only, not on the binary: two binaries linking the same module version give
// two findings it covers alike. So a statement is written only when every finding
// of the report it would cover is decided [NotInBinary]; otherwise the finding's
// decision becomes [Unknown], saying which finding it would also cover. A finding
// without a purl gets none (its statement would cover the advisory in every
// package of the image). Withholding one statement can make another cover a
// finding no longer decided NotInBinary, so this repeats until nothing changes.
func (a *Analyzer) statements(rep *report.Report, res *Result, now time.Time) {
	byName := map[string][]int{} // lower-cased advisory name -> indexes in rep.Findings
	for i, f := range rep.Findings {
		for _, n := range f.Names() {
			k := strings.ToLower(strings.TrimSpace(n))
			if l := byName[k]; len(l) == 0 || l[len(l)-1] != i {
				byName[k] = append(l, i)
			}
		}
	}
	decision := map[int]int{} // index in rep.Findings -> index in res.Decisions
	for i, f := range rep.Findings {
		if f.Type == "go-module" {
			decision[i] = len(decision)
		}
	}
	stmts := make([]suppress.Statement, len(res.Decisions))
	covered := make([][]int, len(res.Decisions)) // indexes in rep.Findings
	for fi, di := range decision {
		d := &res.Decisions[di]
		if d.Verdict != NotInBinary {
			continue
		}
		f := d.Finding
		if f.PURL == "" {
			d.Verdict = Unknown
			d.Evidence = "no statement: the finding has no purl, and a statement without one would cover " + f.ID + " in every package of the image (" + d.Evidence + ")"
			continue
		}
		stmts[di] = suppress.Statement{
			Vulnerability: suppress.Vulnerability{Name: f.ID, Aliases: f.Aliases},
			Products:      []suppress.Product{{ID: rep.Target, Subcomponents: []suppress.Component{{ID: f.PURL}}}},
			Status:        suppress.StatusNotAffected,
			Justification: Justification,
			Impact:        d.Evidence,
			Timestamp:     now,
		}
		one := &suppress.VEX{Statements: []suppress.Statement{stmts[di]}}
		seen := map[int]bool{}
		for _, n := range f.Names() {
			for _, gi := range byName[strings.ToLower(strings.TrimSpace(n))] {
				if seen[gi] {
					continue
				}
				seen[gi] = true
				if _, _, ok := one.Suppresses(rep.Target, rep.Findings[gi], now); ok {
					covered[di] = append(covered[di], gi)
				}
			}
		}
		if !seen[fi] {
			covered[di] = append(covered[di], fi)
		}
	}
	for changed := true; changed; {
		changed = false
		for di := range res.Decisions {
			d := &res.Decisions[di]
			if d.Verdict != NotInBinary {
				continue
			}
			for _, gi := range covered[di] {
				gd, isGo := decision[gi]
				if isGo && res.Decisions[gd].Verdict == NotInBinary {
					continue
				}
				g := rep.Findings[gi]
				why := "not a Go module finding"
				if isGo {
					why = string(res.Decisions[gd].Verdict)
				}
				d.Verdict = Unknown
				d.Evidence = fmt.Sprintf("no statement: it would name only %s and %s, and so also cover %s %s@%s in %s (%s) (%s)",
					d.Finding.ID, d.Finding.PURL, g.ID, g.Package, g.Version, strings.Join(g.Locations, ", "), why, d.Evidence)
				changed = true
				break
			}
		}
	}
	for di, d := range res.Decisions {
		if d.Verdict != NotInBinary {
			continue
		}
		if res.VEX == nil {
			res.VEX = &suppress.VEX{ID: "urn:shipkit:reach:" + rep.Target, Author: "shipkit scan/reach", Timestamp: now}
		}
		res.VEX.Statements = append(res.VEX.Statements, stmts[di])
	}
}

// decide returns the verdict on the Go finding f.
func (a *Analyzer) decide(f report.Finding, res *Result) Decision {
	d := Decision{Finding: f, Verdict: Unknown}
	if len(f.Locations) == 0 {
		d.Evidence = "the finding names no binary"
		return d
	}
	var notes []string
	for _, l := range f.Locations {
		p := path.Clean("/" + l)
		b, ok := res.Binaries[p]
		if !ok {
			d.Evidence = fmt.Sprintf("%s was not analyzed: %v", p, res.Errors[p])
			return d
		}
		v := b.find(f)
		if v == nil {
			d.Evidence = fmt.Sprintf("govulncheck does not report %s for %s@%s in %s", f.ID, f.Package, f.Version, p)
			return d
		}
		if v.Level == LevelSymbol {
			d.Verdict = Present
			d.Evidence = fmt.Sprintf("%s (%s) in %s: %s", v.ID, b.Scanner, p, strings.Join(v.Found, ", "))
			return d
		}
		notes = append(notes, fmt.Sprintf("%s (%s %s/%s) links %s@%s but none of the vulnerable symbols of %s (%s); found at %s level",
			p, b.GoVersion, b.GOOS, b.GOARCH, v.Module, v.Version, v.ID, strings.Join(v.Vulnerable, ", "), v.Level))
	}
	d.Verdict = NotInBinary
	scanner := ""
	if b := res.Binaries[path.Clean("/"+f.Locations[0])]; b != nil {
		scanner = b.Scanner
	}
	d.Evidence = fmt.Sprintf("%s -mode=binary (golang.org/x/vuln/scan, offline database): %s", scanner, strings.Join(notes, "; "))
	return d
}

// find returns what govulncheck found of the advisory of f in b, for the same
// module version, or nil.
func (b *Binary) find(f report.Finding) *Vuln {
	names := f.Names()
	var best *Vuln
	for _, v := range b.Vulns {
		if v.Module != f.Package || trimVersion(v.Version) != trimVersion(f.Version) {
			continue
		}
		hit := false
		for _, n := range v.names() {
			if slices.ContainsFunc(names, func(x string) bool { return strings.EqualFold(x, n) }) {
				hit = true
				break
			}
		}
		if hit && (best == nil || v.Level > best.Level) {
			best = v
		}
	}
	return best
}

// trimVersion drops a leading "v" or "go" ("v1.22.0", "go1.22.0" and "1.22.0"
// compare equal).
func trimVersion(v string) string {
	return strings.TrimPrefix(strings.TrimPrefix(v, "go"), "v")
}

// extract copies the regular files named in wanted out of img's filesystem into
// dir, bounded by the maximum binary size; it returns their local paths by path in
// the image. Files over the bound are recorded in errs.
func (a *Analyzer) extract(ctx context.Context, img v1.Image, wanted map[string]bool, dir string, errs map[string]error) (map[string]string, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]string{}
	for len(out) < len(wanted) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("reach: %w", err)
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reach: read image filesystem: %w", err)
		}
		p := path.Clean("/" + h.Name)
		if !wanted[p] || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > a.cfg.maxBinary {
			errs[p] = fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, h.Size, a.cfg.maxBinary)
			continue
		}
		local := filepath.Join(dir, fmt.Sprintf("bin-%d", len(out)))
		if err := copyFile(local, io.LimitReader(tr, a.cfg.maxBinary)); err != nil {
			return nil, fmt.Errorf("reach: copy %s: %w", p, err)
		}
		out[p] = local
	}
	return out, nil
}

func copyFile(name string, r io.Reader) (err error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	_, err = io.Copy(f, r)
	return err
}

// limitedBuffer keeps at most max bytes and notes when more were written.
type limitedBuffer struct {
	bytes.Buffer
	max  int64
	over bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if int64(l.Len())+int64(len(p)) > l.max {
		l.over = true
		return 0, fmt.Errorf("output exceeds %d bytes", l.max)
	}
	return l.Buffer.Write(p)
}

// OpenVEX returns v as an OpenVEX v0.2.0 JSON document.
func OpenVEX(v *suppress.VEX) ([]byte, error) {
	if v == nil {
		return nil, errors.New("reach: no VEX")
	}
	return json.MarshalIndent(struct {
		Context string `json:"@context"`
		Version int    `json:"version"`
		*suppress.VEX
	}{"https://openvex.dev/ns/v0.2.0", 1, v}, "", "  ")
}
