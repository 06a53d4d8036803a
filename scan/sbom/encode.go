package sbom

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/CycloneDX/cyclonedx-go"
	"github.com/anchore/syft/syft/format/common/cyclonedxhelpers"
	"github.com/anchore/syft/syft/format/common/spdxhelpers"
	"github.com/anchore/syft/syft/format/syftjson"
	"github.com/anchore/syft/syft/source"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/package-url/packageurl-go"
	"github.com/spdx/tools-golang/spdx"

	"github.com/shipkit/shipkit/scan"
)

// Format is an SBOM document format that [Encode] writes.
type Format string

// The formats [Encode] writes, each with syft's own conversion.
const (
	// SPDXJSON is SPDX 2.3 JSON (the predicate of `cosign attest --type spdxjson`).
	SPDXJSON Format = "spdx-json"
	// CycloneDXJSON is CycloneDX 1.6 JSON (`cosign attest --type cyclonedx`).
	CycloneDXJSON Format = "cyclonedx-json"
	// SyftJSON is syft's own JSON, the most complete of the three.
	SyftJSON Format = "syft-json"
)

// Versions of the standard formats that [Encode] writes.
const (
	SPDXVersion      = "2.3"
	CycloneDXVersion = "1.6"
)

// Encode writes s to w in format f.
//
// The document is syft's (its conversion of the SBOM to SPDX 2.3 or CycloneDX 1.6,
// written as syft's encoders write it), with one change: the root component, the
// image the SBOM describes, gets the package URL the purl spec gives an OCI image,
// pkg:oci/<name>@<digest>?arch=…&repository_url=<registry/repository>, when the
// SBOM names the image's repository (see [WithSourceName]), and none when it does
// not (syft would make one of the digest, naming the image "sha256").
func Encode(w io.Writer, s *scan.SBOM, f Format) error {
	if s == nil {
		return fmt.Errorf("encode %s: no SBOM", f)
	}
	var err error
	switch f {
	case SPDXJSON:
		err = encodeSPDX(w, s)
	case CycloneDXJSON:
		err = encodeCycloneDX(w, s)
	case SyftJSON:
		enc, encErr := syftjson.NewFormatEncoderWithConfig(syftjson.DefaultEncoderConfig())
		if encErr != nil {
			return fmt.Errorf("encode %s: %w", f, encErr)
		}
		err = enc.Encode(w, *s.Syft())
	default:
		return fmt.Errorf("unknown SBOM format %q (want %s, %s or %s)", f, SPDXJSON, CycloneDXJSON, SyftJSON)
	}
	if err != nil {
		return fmt.Errorf("encode %s SBOM of %s: %w", f, s.Subject, err)
	}
	return nil
}

// encodeSPDX writes SPDX 2.3 JSON as syft's spdxjson encoder does (its model is
// SPDX 2.3's), with the root package's purl set by rootPURL.
func encodeSPDX(w io.Writer, s *scan.SBOM) error {
	doc := spdxhelpers.ToFormatModel(*s.Syft())
	if doc == nil {
		return fmt.Errorf("syft made no SPDX document")
	}
	if root := spdxRoot(doc); root != nil {
		var refs []*spdx.PackageExternalReference
		for _, r := range root.PackageExternalReferences {
			if r.RefType != "purl" {
				refs = append(refs, r)
			}
		}
		if purl := rootPURL(s); purl != "" {
			refs = append(refs, &spdx.PackageExternalReference{Category: spdx.CategoryPackageManager, RefType: "purl", Locator: purl})
		}
		root.PackageExternalReferences = refs
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

// spdxRoot returns the package the document DESCRIBES (syft's root package of an
// image source), or nil.
func spdxRoot(doc *spdx.Document) *spdx.Package {
	for _, r := range doc.Relationships {
		if r == nil || r.Relationship != "DESCRIBES" || r.RefA.ElementRefID != "DOCUMENT" {
			continue
		}
		for _, p := range doc.Packages {
			if p != nil && p.PackageSPDXIdentifier == r.RefB.ElementRefID {
				return p
			}
		}
	}
	return nil
}

// encodeCycloneDX writes CycloneDX 1.6 JSON as syft's cyclonedxjson encoder does,
// with metadata.component's purl set by rootPURL.
func encodeCycloneDX(w io.Writer, s *scan.SBOM) error {
	bom := cyclonedxhelpers.ToFormatModel(*s.Syft())
	if bom.Metadata != nil && bom.Metadata.Component != nil {
		bom.Metadata.Component.PackageURL = rootPURL(s)
	}
	enc := cyclonedx.NewBOMEncoder(w, cyclonedx.BOMFileFormatJSON)
	enc.SetEscapeHTML(false)
	return enc.EncodeVersion(bom, cyclonedx.SpecVersion1_6)
}

// rootPURL returns the package URL of the image s describes, as the purl spec
// names an OCI image: the last path segment of its repository as the name, its
// digest as the version, its architecture and the repository (registry host and
// path, without scheme) as qualifiers. It is "" unless syft's source names the
// image by repository and digest (repo@sha256:…, as [WithSourceName] makes it).
func rootPURL(s *scan.SBOM) string {
	m, ok := s.Syft().Source.Metadata.(source.ImageMetadata)
	if !ok || m.ManifestDigest == "" {
		return ""
	}
	d, err := name.NewDigest(m.UserInput)
	if err != nil {
		return ""
	}
	repo := d.Context()
	registry := repo.RegistryStr()
	if registry == name.DefaultRegistry {
		registry = "docker.io" // the purl spec's and Docker's name for it
	}
	path := repo.RepositoryStr()
	var q packageurl.Qualifiers
	if m.Architecture != "" {
		q = append(q, packageurl.Qualifier{Key: "arch", Value: m.Architecture})
	}
	q = append(q, packageurl.Qualifier{Key: "repository_url", Value: registry + "/" + path})
	return packageurl.NewPackageURL(packageurl.TypeOCI, "", strings.ToLower(path[strings.LastIndex(path, "/")+1:]),
		m.ManifestDigest, q, "").ToString()
}
