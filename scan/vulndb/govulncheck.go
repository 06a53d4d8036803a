package vulndb

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	syftpkg "github.com/anchore/syft/syft/pkg"
	"golang.org/x/mod/semver"
)

// GoDatabase describes a database in govulncheck's format written by [WriteGo].
type GoDatabase struct {
	// Dir is the database directory; govulncheck reads it with -db file://Dir
	// (see URL).
	Dir string

	// Modified is the modification time stored in index/db.json and in every entry.
	Modified time.Time

	// Entries is the number of advisories (OSV entries) written.
	Entries int
}

// URL is the database's file:// URL, as govulncheck's -db flag takes it.
func (d *GoDatabase) URL() string {
	return "file://" + filepath.ToSlash(d.Dir)
}

// The OSV entry as govulncheck reads it (golang.org/x/vuln/internal/osv).
type goEntry struct {
	SchemaVersion string        `json:"schema_version"`
	ID            string        `json:"id"`
	Modified      time.Time     `json:"modified"`
	Published     time.Time     `json:"published"`
	Aliases       []string      `json:"aliases,omitempty"`
	Summary       string        `json:"summary,omitempty"`
	Details       string        `json:"details"`
	Affected      []goAffected  `json:"affected"`
	References    []goReference `json:"references,omitempty"`
}

type goAffected struct {
	Package           goPackage `json:"package"`
	Ranges            []goRange `json:"ranges,omitempty"`
	EcosystemSpecific struct {
		Imports []goImport `json:"imports,omitempty"`
	} `json:"ecosystem_specific"`
}

type goPackage struct {
	Name      string `json:"name"`
	Ecosystem string `json:"ecosystem"`
}

type goRange struct {
	Type   string         `json:"type"`
	Events []goRangeEvent `json:"events"`
}

type goRangeEvent struct {
	Introduced string `json:"introduced,omitempty"`
	Fixed      string `json:"fixed,omitempty"`
}

type goImport struct {
	Path    string   `json:"path"`
	GOOS    []string `json:"goos,omitempty"`
	GOARCH  []string `json:"goarch,omitempty"`
	Symbols []string `json:"symbols,omitempty"`
}

type goReference struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

type goModuleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type goModule struct {
	Path  string         `json:"path"`
	Vulns []goModuleVuln `json:"vulns"`
}

// WriteGo writes the Go records ("go-module") among records as a vulnerability
// database in govulncheck's format (https://go.dev/security/vuln/database#api:
// index/db.json, index/modules.json, index/vulns.json and ID/<id>.json) in dir,
// which must not exist yet or be empty, so that govulncheck (or
// golang.org/x/vuln/scan) decides from the same advisories as the grype database
// [Write] writes from them. Records that share an ID become one entry with several
// affected modules; their ranges, aliases and [Record.Imports] (packages, symbols,
// goos, goarch) are kept. Records of other types are skipped. [WithBuildTime] sets
// the modification time (default: now).
//
// govulncheck's ranges are [introduced, fixed) over Go's semantic versions, so an
// inclusive bound ("<= v", as [FromOSV] reads OSV's last_affected) is written as
// fixed at the least version after v (v1.2.3 → 1.2.4-0, v1.2.3-rc.1 →
// 1.2.3-rc.1.0), which holds exactly the same versions; govulncheck then shows
// that version as the fix. A range with no exact equivalent (a version that is
// not semantic, an operator other than >=, >, <, <= and =) is an error wrapping
// [ErrGoRange] that names the record, and nothing is written.
func WriteGo(ctx context.Context, dir string, records []Record, opts ...Option) (*GoDatabase, error) {
	o := options{built: time.Now()}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	modified := o.built.UTC().Round(time.Second)
	if dir == "" {
		return nil, fmt.Errorf("write Go vulnerability DB: no directory given")
	}
	entries := map[string]*goEntry{}
	var order []string
	for i, r := range records {
		if r.Type != string(syftpkg.GoModulePkg) {
			continue
		}
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("write Go vulnerability DB: records[%d]: %w", i, err)
		}
		if strings.ContainsAny(r.ID, `/\`) || r.ID == "." || r.ID == ".." {
			return nil, fmt.Errorf("write Go vulnerability DB: records[%d]: ID %q is not a file name", i, r.ID)
		}
		a := goAffected{Package: goPackage{Name: r.Package, Ecosystem: "Go"}}
		for _, rg := range r.Ranges {
			events, err := semverEvents(rg.constraint())
			if err != nil {
				return nil, fmt.Errorf("write Go vulnerability DB: record %s (%s): %w", r.ID, r.Package, err)
			}
			for _, ev := range events {
				a.Ranges = append(a.Ranges, goRange{Type: "SEMVER", Events: ev})
			}
		}
		if len(a.Ranges) == 0 {
			continue // its ranges hold no version; no ranges would say every version
		}
		for _, imp := range r.Imports {
			a.EcosystemSpecific.Imports = append(a.EcosystemSpecific.Imports, goImport{Path: imp.Path, GOOS: imp.GOOS, GOARCH: imp.GOARCH, Symbols: imp.Symbols})
		}
		e, ok := entries[r.ID]
		if !ok {
			e = &goEntry{SchemaVersion: "1.3.1", ID: r.ID, Modified: modified, Published: modified,
				Aliases: r.Aliases, Summary: r.Description, Details: r.Description}
			for _, u := range r.URLs {
				e.References = append(e.References, goReference{Type: "WEB", URL: u})
			}
			entries[r.ID] = e
			order = append(order, r.ID)
		}
		e.Affected = append(e.Affected, a)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("write Go vulnerability DB: %w", err)
	}
	if des, err := os.ReadDir(dir); err == nil && len(des) > 0 {
		return nil, fmt.Errorf("write Go vulnerability DB: %s is not empty", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "ID"), 0o755); err != nil {
		return nil, fmt.Errorf("write Go vulnerability DB: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "index"), 0o755); err != nil {
		return nil, fmt.Errorf("write Go vulnerability DB: %w", err)
	}
	modules := map[string]*goModule{}
	type vulnMeta struct {
		ID       string    `json:"id"`
		Modified time.Time `json:"modified"`
		Aliases  []string  `json:"aliases,omitempty"`
	}
	vulns := []vulnMeta{}
	sort.Strings(order)
	for _, id := range order {
		e := entries[id]
		if err := writeJSON(filepath.Join(dir, "ID", id+".json"), e); err != nil {
			return nil, fmt.Errorf("write Go vulnerability DB: %w", err)
		}
		vulns = append(vulns, vulnMeta{ID: id, Modified: modified, Aliases: e.Aliases})
		for _, a := range e.Affected {
			m, ok := modules[a.Package.Name]
			if !ok {
				m = &goModule{Path: a.Package.Name}
				modules[a.Package.Name] = m
			}
			if n := len(m.Vulns); n > 0 && m.Vulns[n-1].ID == id {
				continue
			}
			var ranges []goRange // of every record of id for the module
			for _, b := range e.Affected {
				if b.Package.Name == a.Package.Name {
					ranges = append(ranges, b.Ranges...)
				}
			}
			m.Vulns = append(m.Vulns, goModuleVuln{ID: id, Modified: modified, Fixed: indexFixed(ranges)})
		}
	}
	mods := make([]*goModule, 0, len(modules))
	for _, m := range modules {
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	for _, f := range []struct {
		name string
		v    any
	}{
		{"vulns.json", vulns},
		{"modules.json", mods},
		{"db.json", map[string]time.Time{"modified": modified}},
	} {
		if err := writeJSON(filepath.Join(dir, "index", f.name), f.v); err != nil {
			return nil, fmt.Errorf("write Go vulnerability DB: %w", err)
		}
	}
	return &GoDatabase{Dir: dir, Modified: modified, Entries: len(order)}, nil
}

// indexFixed is the version a module's entry in index/modules.json gives as
// fixed, below which govulncheck reads the advisory: the greatest fixed version
// of the module's ranges, or "" (every version) when one of them has no fix.
func indexFixed(ranges []goRange) string {
	fixed := ""
	for _, rg := range ranges {
		open := true
		for _, ev := range rg.Events {
			if ev.Fixed != "" {
				open = false
				if fixed == "" || semver.Compare("v"+ev.Fixed, "v"+fixed) > 0 {
					fixed = ev.Fixed
				}
			}
		}
		if open {
			return ""
		}
	}
	return fixed
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
