package sbom

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/anchore/syft/syft/artifact"
	"github.com/anchore/syft/syft/cpe"
	"github.com/anchore/syft/syft/file"
	"github.com/anchore/syft/syft/license"
	"github.com/anchore/syft/syft/pkg"
)

// The form of a cached result in the cache directory. Only what the three OS
// catalogers return is written (their metadata types, relationships between
// their packages without data); an entry that does not decode back to a value
// reflect.DeepEqual to the result stays in memory only.

type pkgDTO struct {
	ID, Name, Version, FoundBy string
	Locations                  []locDTO
	Licenses                   []licDTO
	Language                   pkg.Language
	Type                       pkg.Type
	CPEs                       []cpe.CPE
	PURL                       string
	MetaType                   string
	Meta                       json.RawMessage
	MetaDescription            string // pkg.DpkgDBEntry's Description is json:"-"
}

type locDTO struct {
	Path, Access, FS string
	Annotations      map[string]string
}

type licDTO struct {
	SPDX, Value, Contents string
	Type                  license.Type
	URLs                  []string
	Locations             []locDTO
}

type relDTO struct {
	From, To string
	Type     artifact.RelationshipType
}

func toLocDTOs(set file.LocationSet) []locDTO {
	var out []locDTO
	for _, l := range set.ToSlice() {
		out = append(out, locDTO{Path: l.RealPath, Access: l.AccessPath, FS: l.FileSystemID, Annotations: l.Annotations})
	}
	return out
}

func fromLocDTOs(ls []locDTO) file.LocationSet {
	var out []file.Location
	for _, l := range ls {
		loc := file.Location{}
		loc.RealPath, loc.AccessPath, loc.FileSystemID, loc.Annotations = l.Path, l.Access, l.FS, l.Annotations
		out = append(out, loc)
	}
	return file.NewLocationSet(out...)
}

// encodeEntry fills ent's disk form and returns its encoding, and whether that
// form decodes to the result exactly (with the locations of locs).
func encodeEntry(ent *cacheEntry, locs map[string]file.Location) ([]byte, bool) {
	ok := fillDTO(ent) == nil
	if ok {
		p, r, err := decodeEntry(ent)
		if err == nil {
			p, r, err = copyResult(p, r, locs)
		}
		ok = err == nil && reflect.DeepEqual(p, ent.pkgs) && reflect.DeepEqual(r, ent.rels)
	}
	if !ok {
		ent.Pkgs, ent.Rels = nil, nil
	}
	body, err := json.Marshal(ent)
	if err != nil {
		return nil, false
	}
	return body, ok
}

func fillDTO(ent *cacheEntry) error {
	ent.Pkgs, ent.Rels = nil, nil
	ent.EmptyPkgs = ent.pkgs != nil && len(ent.pkgs) == 0
	ent.EmptyRels = ent.rels != nil && len(ent.rels) == 0
	for _, p := range ent.pkgs {
		d := pkgDTO{ID: string(p.ID()), Name: p.Name, Version: p.Version, FoundBy: p.FoundBy,
			Locations: toLocDTOs(p.Locations), Language: p.Language, Type: p.Type, CPEs: p.CPEs, PURL: p.PURL}
		for _, l := range p.Licenses.ToSlice() {
			d.Licenses = append(d.Licenses, licDTO{SPDX: l.SPDXExpression, Value: l.Value, Contents: l.Contents,
				Type: l.Type, URLs: l.URLs, Locations: toLocDTOs(l.Locations)})
		}
		var err error
		switch m := p.Metadata.(type) {
		case nil:
		case pkg.DpkgDBEntry:
			d.MetaType, d.MetaDescription = "dpkg", m.Description
			d.Meta, err = json.Marshal(m)
		case pkg.ApkDBEntry:
			d.MetaType = "apk"
			d.Meta, err = json.Marshal(m)
		case pkg.RpmDBEntry:
			d.MetaType = "rpm"
			d.Meta, err = json.Marshal(m)
		default:
			return fmt.Errorf("metadata %T not written to disk", m)
		}
		if err != nil {
			return err
		}
		ent.Pkgs = append(ent.Pkgs, d)
	}
	for _, r := range ent.rels {
		from, ok1 := r.From.(pkg.Package)
		to, ok2 := r.To.(pkg.Package)
		if !ok1 || !ok2 || r.Data != nil {
			return errors.New("relationship not written to disk")
		}
		ent.Rels = append(ent.Rels, relDTO{From: string(from.ID()), To: string(to.ID()), Type: r.Type})
	}
	return nil
}

// decodeEntry makes the result of an entry read from disk (locations without file
// references: a hit gives them the image's, see copyResult).
func decodeEntry(ent *cacheEntry) ([]pkg.Package, []artifact.Relationship, error) {
	var pkgs []pkg.Package
	if ent.EmptyPkgs {
		pkgs = []pkg.Package{}
	}
	byID := map[string]pkg.Package{}
	for _, d := range ent.Pkgs {
		p := pkg.Package{Name: d.Name, Version: d.Version, FoundBy: d.FoundBy, Locations: fromLocDTOs(d.Locations),
			Language: d.Language, Type: d.Type, CPEs: d.CPEs, PURL: d.PURL}
		var lics []pkg.License
		for _, l := range d.Licenses {
			lics = append(lics, pkg.License{SPDXExpression: l.SPDX, Value: l.Value, Contents: l.Contents, Type: l.Type,
				URLs: l.URLs, Locations: fromLocDTOs(l.Locations)})
		}
		p.Licenses = pkg.NewLicenseSet(lics...)
		var err error
		switch d.MetaType {
		case "":
		case "dpkg":
			var m pkg.DpkgDBEntry
			err = json.Unmarshal(d.Meta, &m)
			m.Description = d.MetaDescription
			p.Metadata = m
		case "apk":
			var m pkg.ApkDBEntry
			err = json.Unmarshal(d.Meta, &m)
			p.Metadata = m
		case "rpm":
			var m pkg.RpmDBEntry
			err = json.Unmarshal(d.Meta, &m)
			p.Metadata = m
		default:
			err = fmt.Errorf("unknown metadata %q", d.MetaType)
		}
		if err != nil {
			return nil, nil, err
		}
		p.OverrideID(artifact.ID(d.ID))
		pkgs = append(pkgs, p)
		byID[d.ID] = p
	}
	var rels []artifact.Relationship
	if ent.EmptyRels {
		rels = []artifact.Relationship{}
	}
	for _, r := range ent.Rels {
		from, ok1 := byID[r.From]
		to, ok2 := byID[r.To]
		if !ok1 || !ok2 {
			return nil, nil, errors.New("relationship to an unknown package")
		}
		rels = append(rels, artifact.Relationship{From: from, To: to, Type: r.Type})
	}
	return pkgs, rels, nil
}
