package vulndb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/afero"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/installation"
	"github.com/anchore/grype/grype/db/v6/name"
	syftpkg "github.com/anchore/syft/syft/pkg"
)

// SchemaModel is the grype database model (schema major version) that [Write] writes.
// grype looks for such a database in the subdirectory of its root named after it.
const SchemaModel = v6.ModelVersion

// importSource is recorded in import.json as where the database came from; grype
// reports it as the database's origin.
const importSource = "shipkit vulndb"

// Database describes a database written by [Write].
type Database struct {
	// RootDir is the directory to configure grype with (installation.Config.DBRootDir).
	RootDir string

	// Dir is where the files are: RootDir/6.
	Dir string

	// Path is the SQLite file, Dir/vulnerability.db. Dir/import.json holds its digest.
	Path string

	// Built is the build timestamp stored in the database, which grype's age check reads.
	Built time.Time

	// SchemaVersion is the full schema version stored in the database, e.g. "v6.1.10".
	SchemaVersion string
}

// InstallationConfig returns a grype installation config that loads d the way grype
// loads a downloaded database: the checksum in import.json is checked, and so is the
// age when maxAge is positive (zero turns the age check off). Pass it with update=false
// to grype.LoadVulnerabilityDB; a zero distribution.Config is then enough, since
// nothing is fetched.
func (d *Database) InstallationConfig(maxAge time.Duration) installation.Config {
	return installation.Config{
		DBRootDir:          d.RootDir,
		ValidateChecksum:   true,
		ValidateAge:        maxAge > 0,
		MaxAllowedBuiltAge: maxAge,
	}
}

// Option configures [Write].
type Option func(*options)

type options struct {
	built time.Time
}

// WithBuildTime sets the build timestamp stored in the database (default: now), e.g. a
// time in the past to test that a scan refuses a stale database. grype keeps it to the
// second, in UTC.
func WithBuildTime(t time.Time) Option {
	return func(o *options) { o.built = t }
}

// Write writes records as a grype v6 database under root, in root/6 (see
// [Database]), replacing any database there; a failed or cancelled write leaves
// that one as it was. It uses grype's own store writer, then rehydrates the indexes
// and writes import.json the way grype does after downloading a database. Records
// that share an ID and a source (a distro, or GitHub for GHSA IDs) become one
// vulnerability with several affected packages; its description, aliases, severity
// and references are taken from the first of them. An empty record list gives an
// empty, valid database. Every record is checked before anything is written.
// A process that has the previous database open goes on reading it until it loads
// the database again.
func Write(ctx context.Context, root string, records []Record, opts ...Option) (*Database, error) {
	o := options{built: time.Now()}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	built := o.built.UTC().Round(time.Second)
	if root == "" {
		return nil, fmt.Errorf("write grype DB: no directory given")
	}
	for i, r := range records {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("write grype DB: records[%d]: %w", i, err)
		}
	}

	dir := filepath.Join(root, strconv.Itoa(v6.ModelVersion))
	path := filepath.Join(dir, v6.VulnerabilityDBFileName)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("write grype DB: %w", err)
	}
	// Build the database beside its final place and move it there whole, so a
	// failed or cancelled write leaves the previous database as it was.
	tmp, err := os.MkdirTemp(root, ".vulndb-")
	if err != nil {
		return nil, fmt.Errorf("write grype DB: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := build(ctx, tmp, records, built); err != nil {
		return nil, fmt.Errorf("write grype DB %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("write grype DB: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("write grype DB: removing the previous database: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("write grype DB: %w", err)
	}
	desc, err := v6.ReadDescription(path)
	if err != nil {
		return nil, fmt.Errorf("write grype DB %s: read back: %w", path, err)
	}
	return &Database{
		RootDir:       root,
		Dir:           dir,
		Path:          path,
		Built:         desc.Built.Time,
		SchemaVersion: desc.SchemaVersion.String(),
	}, nil
}

// build writes the database files into dir.
func build(ctx context.Context, dir string, records []Record, built time.Time) error {
	path := filepath.Join(dir, v6.VulnerabilityDBFileName)
	if err := writeStore(ctx, dir, records, built); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := setBuildTime(path, built); err != nil {
		return fmt.Errorf("set build time: %w", err)
	}
	if err := writePlatforms(path, records); err != nil {
		return fmt.Errorf("write goos/goarch limits: %w", err)
	}
	if err := v6.Hydrater()(dir); err != nil {
		return fmt.Errorf("hydrate: %w", err)
	}
	if _, err := v6.WriteImportMetadata(afero.NewOsFs(), dir, importSource); err != nil {
		return fmt.Errorf("import metadata: %w", err)
	}
	return nil
}

// writeStore writes the vulnerability and package rows with grype's store writer.
func writeStore(ctx context.Context, dir string, records []Record, built time.Time) (err error) {
	w, err := v6.NewWriter(v6.Config{DBDirPath: dir, CacheSizeKiB: 16 << 10})
	if err != nil {
		return fmt.Errorf("open writer: %w", err)
	}
	defer func() {
		if cerr := w.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close writer: %w", cerr)
		}
	}()

	for _, group := range groupRecords(records) {
		if err := ctx.Err(); err != nil {
			return err
		}
		vh := vulnerabilityHandle(group[0], built)
		if err := w.AddVulnerabilities(vh); err != nil {
			return fmt.Errorf("add vulnerability %s: %w", vh.Name, err)
		}
		for _, r := range group {
			ph, err := affectedPackage(r)
			if err != nil {
				return fmt.Errorf("add %s to %s: %w", r.Package, r.ID, err)
			}
			ph.VulnerabilityID = vh.ID
			if err := w.AddAffectedPackages(ph); err != nil {
				return fmt.Errorf("add %s to %s: %w", r.Package, r.ID, err)
			}
		}
	}
	return nil
}

// setBuildTime replaces the build timestamp grype's writer stamped (always "now").
func setBuildTime(path string, built time.Time) (err error) {
	db, err := v6.NewLowLevelDB(path, false, true, false)
	if err != nil {
		return err
	}
	defer func() {
		sqlDB, dbErr := db.DB()
		if dbErr == nil {
			dbErr = sqlDB.Close()
		}
		if dbErr != nil && err == nil {
			err = dbErr
		}
	}()
	res := db.Model(&v6.DBMetadata{}).Where("true").Update("build_timestamp", built)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("%d metadata rows updated, want 1", res.RowsAffected)
	}
	return nil
}

// provider returns the grype provider (vunnel's name for the data source) of r.
func provider(r Record) string {
	switch {
	case r.Distro != "":
		id, _, _ := strings.Cut(strings.ToLower(r.Distro), ":")
		return id
	case strings.HasPrefix(strings.ToUpper(r.ID), "GHSA-"):
		return "github"
	default:
		return "osv"
	}
}

// groupRecords groups records by provider and ID, keeping their order.
func groupRecords(records []Record) [][]Record {
	index := map[string]int{}
	var groups [][]Record
	for _, r := range records {
		key := provider(r) + "/" + r.ID
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	return groups
}

// vulnerabilityHandle builds the vulnerability row of r as grype's transformers do.
func vulnerabilityHandle(r Record, built time.Time) *v6.VulnerabilityHandle {
	sev, _ := normalizeSeverity(r.Severity) // checked by validate
	var sevs []v6.Severity
	if sev != "" {
		sevs = append(sevs, v6.Severity{Scheme: v6.SeveritySchemeCHMLN, Value: sev, Rank: 1})
	}
	for _, c := range r.CVSS {
		sevs = append(sevs, v6.Severity{
			Scheme: v6.SeveritySchemeCVSS,
			Value:  v6.CVSSSeverity{Vector: c.Vector, Version: c.Version},
			Rank:   2,
		})
	}
	var refs []v6.Reference
	for _, u := range r.URLs {
		refs = append(refs, v6.Reference{URL: u})
	}
	p := provider(r)
	return &v6.VulnerabilityHandle{
		Name:       r.ID,
		Status:     v6.VulnerabilityActive,
		ProviderID: p,
		Provider: &v6.Provider{
			ID:           p,
			Version:      "1",
			Processor:    importSource,
			DateCaptured: &built,
		},
		BlobValue: &v6.VulnerabilityBlob{
			ID:          r.ID,
			Description: r.Description,
			References:  refs,
			Aliases:     r.Aliases,
			Severities:  sevs,
		},
	}
}

// affectedPackage builds the affected package row of r as grype's transformers do.
func affectedPackage(r Record) (*v6.AffectedPackageHandle, error) {
	f, err := versionFormat(r.Type)
	if err != nil {
		return nil, err
	}
	var osRow *v6.OperatingSystem
	if r.Distro != "" {
		if osRow, err = parseDistro(r.Distro); err != nil {
			return nil, err
		}
	}
	var cves []string
	for _, id := range append([]string{r.ID}, r.Aliases...) {
		if strings.HasPrefix(strings.ToUpper(id), "CVE-") {
			cves = append(cves, id)
		}
	}
	ranges := make([]v6.Range, 0, len(r.Ranges))
	for _, rg := range r.Ranges {
		fix := &v6.Fix{State: v6.NotFixedStatus}
		if rg.FixedIn != "" {
			fix = &v6.Fix{Version: rg.FixedIn, State: v6.FixedStatus}
		}
		ranges = append(ranges, v6.Range{
			Version: v6.Version{Type: strings.ToLower(f.String()), Constraint: rg.constraint()},
			Fix:     fix,
		})
	}
	t := syftpkg.Type(r.Type)
	blob := &v6.PackageBlob{CVEs: cves, Ranges: ranges}
	if len(r.Imports) > 0 {
		// grype's own Go qualifier (as grype-db writes it from golang/vulndb): used
		// only for SBOMs that carry a binary's symbols. The goos/goarch limits have
		// no place in grype's schema; writePlatforms keeps them.
		q := &v6.PackageQualifiers{}
		for _, imp := range r.Imports {
			q.GoImports = append(q.GoImports, v6.GoImport{Path: imp.Path, Symbols: imp.Symbols})
		}
		blob.Qualifiers = q
	}
	return &v6.AffectedPackageHandle{
		OperatingSystem: osRow,
		Package:         &v6.Package{Ecosystem: r.Type, Name: name.Normalize(r.Package, t)},
		BlobValue:       blob,
	}, nil
}
