package vulndb

import (
	"fmt"
	"os"
	"strings"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/name"
	syftpkg "github.com/anchore/syft/syft/pkg"
)

// platformTable is the table, beside grype's own in the same SQLite file, in which
// [Write] keeps the goos/goarch limits of Go advisories. grype's v6 schema has no
// place for them (its Go qualifier keeps import paths and symbols only), and grype
// ignores tables it does not know; the file's checksum in import.json covers it.
const platformTable = "shipkit_go_platforms"

// writePlatforms stores the platform limits of the Go records in the database at
// path. A record with no import limited to a platform gets no row: it applies
// everywhere.
func writePlatforms(path string, records []Record) (err error) {
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
	if err := db.Exec(`CREATE TABLE ` + platformTable + ` (vulnerability TEXT NOT NULL, package TEXT NOT NULL, goos TEXT NOT NULL, goarch TEXT NOT NULL)`).Error; err != nil {
		return fmt.Errorf("create %s: %w", platformTable, err)
	}
	for _, r := range records {
		if r.Type != string(syftpkg.GoModulePkg) || !r.limited() {
			continue // no limit: no row
		}
		pkg := name.Normalize(r.Package, syftpkg.GoModulePkg)
		for _, imp := range r.Imports {
			if err := db.Exec(`INSERT INTO `+platformTable+` VALUES (?, ?, ?, ?)`,
				r.ID, pkg, strings.Join(imp.GOOS, ","), strings.Join(imp.GOARCH, ",")).Error; err != nil {
				return fmt.Errorf("insert %s %s: %w", r.ID, r.Package, err)
			}
		}
	}
	return nil
}

// Platforms are the goos/goarch limits of the Go advisories of a database written
// by [Write], read back with [ReadPlatforms]. A nil *Platforms limits nothing.
type Platforms struct {
	limits map[string][]GoImport // by advisory ID and package, "\x00"-joined
}

// ReadPlatforms reads the platform limits of the Go advisories in the grype
// database file at path (Database.Path). A database that [Write] did not write
// (one of grype's own) has none: the result is empty, and every advisory applies
// on every platform, as grype decides. A missing or unreadable file is an error.
func ReadPlatforms(path string) (*Platforms, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("read Go platform limits: %w", err)
	}
	db, err := v6.NewLowLevelDB(path, false, false, false)
	if err != nil {
		return nil, fmt.Errorf("read Go platform limits of %s: %w", path, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("read Go platform limits of %s: %w", path, err)
	}
	defer sqlDB.Close()
	p := &Platforms{limits: map[string][]GoImport{}}
	if !db.Migrator().HasTable(platformTable) {
		return p, nil
	}
	rows, err := sqlDB.Query(`SELECT vulnerability, package, goos, goarch FROM ` + platformTable)
	if err != nil {
		return nil, fmt.Errorf("read Go platform limits of %s: %w", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, pkg, goos, goarch string
		if err := rows.Scan(&id, &pkg, &goos, &goarch); err != nil {
			return nil, fmt.Errorf("read Go platform limits of %s: %w", path, err)
		}
		k := platformKey(id, pkg)
		p.limits[k] = append(p.limits[k], GoImport{GOOS: splitList(goos), GOARCH: splitList(goarch)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read Go platform limits of %s: %w", path, err)
	}
	return p, nil
}

// Len is the number of advisory and package pairs that are limited to some platforms.
func (p *Platforms) Len() int {
	if p == nil {
		return 0
	}
	return len(p.limits)
}

// Applies says whether advisory id of the Go module pkg applies to a binary built
// for goos/goarch (see [Record.AppliesTo]): false only when every package of the
// module the advisory names is limited to other operating systems or
// architectures. An empty goos or goarch (unknown) matches every limit.
func (p *Platforms) Applies(id, pkg, goos, goarch string) bool {
	if p == nil {
		return true
	}
	imps, ok := p.limits[platformKey(id, name.Normalize(pkg, syftpkg.GoModulePkg))]
	if !ok {
		return true
	}
	return Record{Imports: imps}.AppliesTo(goos, goarch)
}

// limited says whether every import of r is limited to some platforms.
func (r Record) limited() bool {
	if len(r.Imports) == 0 {
		return false
	}
	for _, imp := range r.Imports {
		if len(imp.GOOS) == 0 && len(imp.GOARCH) == 0 {
			return false
		}
	}
	return true
}

func platformKey(id, pkg string) string { return id + "\x00" + pkg }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
