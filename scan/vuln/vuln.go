// Package vuln matches SBOMs against a grype v6 vulnerability database on local disk
// and reports the findings as a [scan.Report].
//
// [Open] loads the database once into a [DB], which checks its schema and age, and
// then scans any number of SBOMs, concurrently if the caller likes (a DB is a
// scan.Scanner). It never downloads anything
// unless the caller opts in with [WithUpdate].
package vuln

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anchore/grype/grype"
	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/distribution"
	"github.com/anchore/grype/grype/db/v6/installation"
	"github.com/anchore/grype/grype/distro"
	"github.com/anchore/grype/grype/match"
	"github.com/anchore/grype/grype/matcher"
	grypepkg "github.com/anchore/grype/grype/pkg"
	"github.com/anchore/grype/grype/vulnerability"
	syftpkg "github.com/anchore/syft/syft/pkg"

	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/internal/parallel"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/vulndb"
)

// Errors a caller may branch on with errors.Is.
var (
	// ErrDBTooOld: the database was built longer ago than the maximum age (see
	// [WithMaxAge]); the error is a *[DBAgeError].
	ErrDBTooOld = errors.New("vulnerability database too old")
	// ErrSchema: the database's schema is not one this build of grype reads: a newer
	// revision of model 6, or under the root only a database of another model.
	ErrSchema = errors.New("unsupported vulnerability database schema")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("vulnerability database closed")
	// ErrNoDatabase: there is no database under the root given to [Open] (no
	// <root>/6/vulnerability.db, or no root directory): install one with [Import],
	// or open with [WithUpdate]. errors.Is(err, fs.ErrNotExist) is true too.
	ErrNoDatabase error = &wrapping{msg: "no vulnerability database", err: fs.ErrNotExist}
	// ErrCorrupt: the database file is there but cannot be used: not an SQLite
	// database, cut off, its import.json (grype's record of the installation and
	// the file's checksum) missing or unreadable, or a checksum that does not match.
	// Install it again with [Import].
	ErrCorrupt = errors.New("vulnerability database corrupt or incomplete")
	// ErrInvalidOption: [Open] was given an option value it cannot use, such as a
	// concurrency below one. The error names the option and the value; nothing is
	// read before it is returned. It is the sentinel every stage shares
	// (deploy.ErrInvalidOption, sbom.ErrInvalidOption, ... are the same value).
	ErrInvalidOption = option.ErrInvalid
)

// wrapping is a sentinel error that also matches another (errors.Is).
type wrapping struct {
	msg string
	err error
}

func (e *wrapping) Error() string { return e.msg }
func (e *wrapping) Unwrap() error { return e.err }

// DBAgeError says how old a refused database is.
type DBAgeError struct {
	Path   string
	Built  time.Time
	Age    time.Duration
	MaxAge time.Duration
}

// Error names the database, its build time and the limit.
func (e *DBAgeError) Error() string {
	return fmt.Sprintf("vulnerability database %s was built %s (%s ago), more than the maximum age %s: update it (grype db update, or copy a newer database archive over and install it with vuln.Import)",
		e.Path, e.Built.UTC().Format(time.RFC3339), e.Age.Round(time.Minute), e.MaxAge)
}

// Unwrap makes errors.Is(err, ErrDBTooOld) true.
func (e *DBAgeError) Unwrap() error { return ErrDBTooOld }

// DBStatus describes the database a [DB] has open.
type DBStatus struct {
	// Path is the SQLite file, <root>/6/vulnerability.db.
	Path string
	// Schema is the database's schema version, e.g. "v6.1.10".
	Schema string
	// Built is when the database was built.
	Built time.Time
	// From is where the database came from, as recorded when it was installed.
	From string
}

// Option configures [Open].
type Option func(*config)

type config struct {
	maxAge   time.Duration
	update   *distribution.Config
	now      func() time.Time
	log      *slog.Logger
	observer observe.Observer
	matchers matcher.Config
	workers  int
	// grypeLoader opens the database with grype.LoadVulnerabilityDB, without
	// the lookup memo of loadStore: the tests compare the two.
	grypeLoader bool
	// memoEntries and memoRows bound the lookup memo (zero: maxLookupEntries
	// and maxLookupRows); the tests make them small.
	memoEntries, memoRows int
}

// WithMaxAge refuses a database built longer than d ago, at Open and at every Scan
// (a long-lived scanner does not keep using a database that has gone stale). Zero,
// the default, checks no age.
func WithMaxAge(d time.Duration) Option { return func(c *config) { c.maxAge = d } }

// WithUpdate lets Open check for a newer database with the given distribution
// settings (grype's listing URL, timeouts) and download it into the root before
// loading. Without it nothing is ever downloaded.
func WithUpdate(dist distribution.Config) Option {
	return func(c *config) { c.update = &dist }
}

// WithClock sets the clock that database ages and scan times are measured with
// (default time.Now).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithLogger sets the logger for the scanner's own messages (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithObserver sets where the scanner reports its steps (default: none;
// nil means none): "load vulnerability database" in Open, Finished with the
// database's schema and build time; and "scan <digest>" for each Scan, Finished with
// the number of findings. A step that fails reports Failed with the error.
func WithObserver(o observe.Observer) Option { return func(c *config) { c.observer = o } }

// WithConcurrency sets how many SBOMs [DB.ScanAll] matches at once (default 1:
// one after another). The reports are the same whatever n is. grype matches the
// packages of one SBOM one after another, but it opens its SQLite database in
// shared-cache mode, where its connections take one mutex to prepare and run each
// query (preparing is a fifth of a scan's CPU); on a 2-core
// machine n = 2 was measured from 0.8x to 1.2x of one at a time (BENCHMARKS.md),
// and 1.16x with the lookups remembered, so the default stays 1. n < 1 is refused by Open with an error wrapping
// [ErrInvalidOption].
func WithConcurrency(n int) Option { return func(c *config) { c.workers = n } }

// WithMatcherConfig sets grype's matcher settings, e.g. whether CPEs are used for
// language packages (default: grype's zero config, no CPE matching for them).
func WithMatcherConfig(mc matcher.Config) Option { return func(c *config) { c.matchers = mc } }

// DB is a grype v6 vulnerability database opened once, a scan.Scanner that matches
// SBOMs against it. It is safe for
// concurrent use; Close it when done. It remembers what grype's matchers found for
// each package it has scanned (up to 100,000 packages), so the packages that many
// images share, such as those of a common base image, are looked up once; and the
// rows of grype's small lookup tables (the distro's operating systems and aliases,
// providers, KEV/EPSS/CWE by CVE; up to 10,000 results), which grype reads again
// for every package, so images with no package in common are matched faster too.
type DB struct {
	cfg     config
	status  DBStatus
	version string

	mu     sync.RWMutex // held for reading by scans, for writing by Close
	prov   vulnerability.Provider
	closer io.Closer // closes prov and what was opened with it
	closed bool
	cache  *matchCache
	// platforms are the goos/goarch limits of Go advisories that scan/vulndb
	// keeps beside grype's tables (none in grype's own databases).
	platforms *vulndb.Platforms
}

var _ scan.Scanner = (*DB)(nil)

// Open loads the grype v6 database under root (the directory holding 6/, as grype's
// db.cache-dir) with its checksum verified, checks its schema and, with
// [WithMaxAge], its age. A missing database is an error wrapping [ErrNoDatabase]
// (and fs.ErrNotExist), a corrupt or incompletely installed one [ErrCorrupt], one
// of another schema [ErrSchema], a stale one [ErrDBTooOld]. A database written by
// scan/vulndb also carries the goos/goarch limits of Go advisories (golang/vulndb's
// ecosystem_specific.imports): Scan then drops a Go finding whose advisory is
// limited to other platforms than the binary's (its build info's GOOS/GOARCH, else
// the SBOM's image platform).
func Open(ctx context.Context, root string, opts ...Option) (*DB, error) {
	c := config{now: time.Now, workers: 1}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.workers < 1 {
		return nil, fmt.Errorf("open vulnerability database: %w", option.Errorf("WithConcurrency(%d): want at least 1", c.workers))
	}
	c.log = observe.OrDiscardLogger(c.log)
	c.observer = observe.OrDiscard(c.observer)
	st := observe.StartStep(c.observer, observe.StageScan, "load vulnerability database", 0, root)
	s, err := open(ctx, root, c)
	if err != nil {
		return nil, st.Fail(err)
	}
	st.Finish(fmt.Sprintf("schema %s, built %s", s.status.Schema, s.status.Built.Format(time.RFC3339)))
	return s, nil
}

func open(ctx context.Context, root string, c config) (*DB, error) {
	if root == "" {
		return nil, errors.New("open vulnerability database: no directory given")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open vulnerability database: %w", err)
	}
	inst := installation.Config{DBRootDir: root, ValidateChecksum: true}
	if c.update != nil {
		if err := update(ctx, inst, *c.update, c.log); err != nil {
			return nil, fmt.Errorf("update vulnerability database under %s: %w", root, err)
		}
	}
	if err := findDB(root); err != nil {
		return nil, fmt.Errorf("open vulnerability database under %s: %w", root, err)
	}
	// Everything grype reads from here on is local and there: a failure is the
	// database's own.
	prov, closer, st, err := load(inst, c)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("open vulnerability database under %s: %w", root, err)
		}
		return nil, fmt.Errorf("open vulnerability database under %s: %w: %w; install it again with vuln.Import", root, ErrCorrupt, err)
	}
	s := &DB{cfg: c, prov: prov, closer: closer, version: grypeVersion(), cache: newMatchCache(maxCachedPackages)}
	if st != nil {
		s.status = DBStatus{Path: st.Path, Schema: st.SchemaVersion, Built: st.Built.UTC(), From: st.From}
	}
	if err := checkSchema(s.status.Schema); err != nil {
		_ = closer.Close()
		return nil, fmt.Errorf("open vulnerability database %s: %w", s.status.Path, err)
	}
	if s.status.Path != "" {
		if s.platforms, err = vulndb.ReadPlatforms(s.status.Path); err != nil {
			_ = closer.Close()
			return nil, fmt.Errorf("open vulnerability database %s: %w: %w", s.status.Path, ErrCorrupt, err)
		}
	}
	if err := s.checkAge(); err != nil {
		_ = closer.Close()
		return nil, err
	}
	c.log.DebugContext(ctx, "opened vulnerability database", "path", s.status.Path, "schema", s.status.Schema, "built", s.status.Built)
	return s, nil
}

// update checks for a newer database with grype's distribution client and installs
// it, as grype's own loader does before loading: a failed check is an error only
// when dist.RequireUpdateCheck is set, else it is logged and the installed database
// is used.
func update(ctx context.Context, inst installation.Config, dist distribution.Config, log *slog.Logger) error {
	client, err := distribution.NewClient(dist)
	if err != nil {
		return fmt.Errorf("distribution client: %w", err)
	}
	cur, err := installation.NewCurator(inst, client)
	if err != nil {
		return err
	}
	updated, err := cur.Update()
	switch {
	case err != nil && dist.RequireUpdateCheck:
		return err
	case err != nil:
		log.WarnContext(ctx, "vulnerability database update failed; using the installed one", "error", err)
	case updated:
		log.InfoContext(ctx, "vulnerability database updated", "root", inst.DBRootDir)
	}
	return nil
}

// findDB checks that root holds a database file of this schema model that can be
// read: an error wrapping ErrNoDatabase (or ErrSchema, when only another model's
// is there) if not.
func findDB(root string) error {
	fi, err := os.Stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s does not exist; install one with vuln.Import, or open with vuln.WithUpdate", ErrNoDatabase, root)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory (want the directory that holds %d/)", ErrNoDatabase, root, v6.ModelVersion)
	}
	path := filepath.Join(root, strconv.Itoa(v6.ModelVersion), v6.VulnerabilityDBFileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if other := otherModel(root); other != "" {
			return fmt.Errorf("%w: found only %s, of another schema model; this build reads model %d (in %s)",
				ErrSchema, other, v6.ModelVersion, filepath.Dir(path))
		}
		return fmt.Errorf("%w: no %s; install one with vuln.Import, or open with vuln.WithUpdate", ErrNoDatabase, path)
	}
	if err != nil {
		return err // permission denied, or another error of the file system
	}
	return f.Close()
}

// otherModel returns the directory of a database of another schema model under
// root (grype keeps each model in <root>/<model>/, e.g. what a newer grype
// installed), or "" if there is none.
func otherModel(root string) string {
	entries, err := os.ReadDir(root)
	if err != nil {
		return ""
	}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == v6.ModelVersion || !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(dir, v6.VulnerabilityDBFileName)); err == nil {
			return dir
		}
	}
	return ""
}

// checkSchema accepts "vM.R.A" with M and R this grype's model and revision (any
// addition, which is backwards compatible by grype's rules).
func checkSchema(schema string) error {
	parts := strings.Split(strings.TrimPrefix(schema, "v"), ".")
	nums := make([]int, 0, 3)
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			break
		}
		nums = append(nums, n)
	}
	if len(parts) != 3 || len(nums) != 3 {
		return fmt.Errorf("%w: schema version %q is not of the form v6.R.A", ErrSchema, schema)
	}
	if nums[0] != v6.ModelVersion || nums[1] > v6.Revision {
		return fmt.Errorf("%w: schema %s, this build reads v%d.%d.x and older revisions of v%d", ErrSchema, schema, v6.ModelVersion, v6.Revision, v6.ModelVersion)
	}
	return nil
}

func (s *DB) checkAge() error {
	if s.cfg.maxAge <= 0 {
		return nil
	}
	age := s.cfg.now().Sub(s.status.Built)
	if s.status.Built.IsZero() || age > s.cfg.maxAge {
		return &DBAgeError{Path: s.status.Path, Built: s.status.Built, Age: age, MaxAge: s.cfg.maxAge}
	}
	return nil
}

// Status describes the open database: path, schema and build time.
func (s *DB) Status() DBStatus { return s.status }

// Close releases the database; it waits for scans in flight.
func (s *DB) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closer.Close()
}

// Scan matches the packages of sb against the database. Packages of the image's
// operating system (deb, rpm, apk) are matched with the distro that the SBOM's
// os-release names, which grype's own conversion leaves unset.
func (s *DB) Scan(ctx context.Context, sb *scan.SBOM) (*scan.Report, error) {
	st := observe.NewStep(s.cfg.observer, observe.StageScan, "scan", 0)
	if sb != nil {
		st.Start("scan "+target(sb), "")
	}
	r, err := s.scan(ctx, sb)
	if err != nil {
		return nil, st.Fail(err)
	}
	st.Finish(fmt.Sprintf("%d findings", len(r.Findings)))
	return r, nil
}

// ScanAll matches the SBOMs against the database, up to [WithConcurrency] at once,
// and returns their reports in the order of sbs: the same reports as [DB.Scan] of
// each in turn (the tool's start and finish times aside). It stops at the first
// failure; the error names the SBOM's target.
func (s *DB) ScanAll(ctx context.Context, sbs []*scan.SBOM) ([]*scan.Report, error) {
	for i, sb := range sbs {
		if sb == nil {
			return nil, fmt.Errorf("scan: SBOM %d: no SBOM", i)
		}
	}
	out := make([]*scan.Report, len(sbs))
	err := parallel.Do(ctx, s.cfg.workers, len(sbs), func(ctx context.Context, i int) error {
		r, err := s.Scan(ctx, sbs[i])
		out[i] = r
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *DB) scan(ctx context.Context, sb *scan.SBOM) (*scan.Report, error) {
	if sb == nil {
		return nil, errors.New("scan: no SBOM")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	target := target(sb)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scan %s: %w", target, err)
	}
	if err := s.checkAge(); err != nil {
		return nil, fmt.Errorf("scan %s: %w", target, err)
	}
	started := s.cfg.now()
	sy := sb.Syft()
	d := distro.FromRelease(sy.Artifacts.LinuxDistribution, distro.DefaultFixChannels())
	var pkgs []grypepkg.Package
	if sy.Artifacts.Packages != nil {
		for _, p := range grypepkg.FromCollection(sy.Artifacts.Packages, sy.Relationships, grypepkg.SynthesisConfig{}) {
			if p.Distro == nil {
				p.Distro = d
			}
			pkgs = append(pkgs, *p)
		}
	}
	desc := sy.Source
	vm := &grype.VulnerabilityMatcher{
		VulnerabilityProvider: s.prov,
		Matchers:              s.cache.wrap(matcher.NewDefaultMatchers(s.cfg.matchers)),
	}
	found, _, err := vm.FindMatchesContext(ctx, pkgs, grypepkg.Context{
		Source:                &desc,
		Distro:                d,
		DistroDetectionFailed: sy.Artifacts.LinuxDistribution != nil && d == nil,
	})
	if err == nil {
		err = ctx.Err() // grype checks the context only between packages
	}
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", target, err)
	}
	r := &report.Report{
		Target:   target,
		Findings: []report.Finding{},
		Tool: &report.Tool{
			Name: "grype", Version: s.version, URI: "pkg:golang/github.com/anchore/grype@" + s.version,
			DBURI: "grype-db", DBSchema: s.status.Schema, DBBuilt: s.status.Built,
			StartedOn: started, FinishedOn: s.cfg.now(),
		},
	}
	if sb.Subject.Hex != "" {
		r.Subject = sb.Subject.String()
	}
	if sb.Platform != nil {
		r.Platform = sb.Platform.String()
	}
	if found != nil {
		for _, m := range found.Sorted() {
			if !s.onPlatform(m, sb) {
				continue
			}
			r.Findings = append(r.Findings, finding(m))
		}
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.ID < b.ID
	})
	s.cfg.log.DebugContext(ctx, "scanned SBOM", "target", target, "packages", len(pkgs), "findings", len(r.Findings))
	return r, nil
}

// onPlatform says whether a match of a Go advisory applies to the platform the
// binary was built for (its build info's GOOS and GOARCH, else the image's
// platform): golang/vulndb limits some advisories to, say, goos windows, and
// grype's schema cannot say so. Matches of other packages, and of an unknown
// platform, always apply.
func (s *DB) onPlatform(m match.Match, sb *scan.SBOM) bool {
	if s.platforms.Len() == 0 || m.Package.Type != syftpkg.GoModulePkg {
		return true
	}
	var goos, goarch string
	if md, ok := m.Package.Metadata.(grypepkg.GolangBinMetadata); ok {
		goarch = md.Architecture
		if v, ok := md.BuildSettings.Get("GOOS"); ok {
			goos = v
		}
		if v, ok := md.BuildSettings.Get("GOARCH"); ok && goarch == "" {
			goarch = v
		}
	}
	if sb.Platform != nil {
		if goos == "" {
			goos = sb.Platform.OS
		}
		if goarch == "" {
			goarch = sb.Platform.Architecture
		}
	}
	return s.platforms.Applies(m.Vulnerability.ID, m.Package.Name, goos, goarch)
}

// target names what an SBOM describes: its subject digest, else syft's source name.
func target(sb *scan.SBOM) string {
	if sb.Subject.Hex != "" {
		return sb.Subject.String()
	}
	if n := sb.Syft().Source.Name; n != "" {
		return n
	}
	return "unknown"
}

// finding turns a grype match into a report finding.
func finding(m match.Match) report.Finding {
	v := m.Vulnerability
	f := report.Finding{
		ID:       v.ID,
		Package:  m.Package.Name,
		Version:  m.Package.Version,
		Type:     string(m.Package.Type),
		PURL:     m.Package.PURL,
		FixedIn:  slices.Clone(v.Fix.Versions),
		FixState: string(v.Fix.State),
	}
	for _, rel := range v.RelatedVulnerabilities {
		if rel.ID != "" && rel.ID != f.ID && !slices.Contains(f.Aliases, rel.ID) {
			f.Aliases = append(f.Aliases, rel.ID)
		}
	}
	for _, l := range m.Package.Locations.ToSlice() {
		if p := l.RealPath; p != "" && !slices.Contains(f.Locations, p) {
			f.Locations = append(f.Locations, p)
		}
	}
	if md := v.Metadata; md != nil {
		if sev, err := report.ParseSeverity(md.Severity); err == nil {
			f.Severity = sev
		}
		for _, c := range md.Cvss {
			f.CVSS = append(f.CVSS, report.CVSS{Version: c.Version, Vector: c.Vector, Score: c.Metrics.BaseScore})
		}
		f.DataSource = md.DataSource
		f.URLs = slices.Clone(md.URLs)
		f.Description = md.Description
	}
	return f
}

// grypeVersion returns the version of the grype module linked into this program.
func grypeVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/anchore/grype" {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "unknown"
}
