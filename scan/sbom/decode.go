package sbom

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/anchore/syft/syft/format/cyclonedxjson"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/format/syftjson"
	syftsbom "github.com/anchore/syft/syft/sbom"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/scan"
)

// ErrUnknownFormat is wrapped by [Decode]'s error for a document that is none of
// SPDX JSON, CycloneDX JSON or syft JSON.
var ErrUnknownFormat = errors.New("not an SBOM document in a format shipkit reads")

// Decode reads an SBOM document, SPDX 2.2/2.3 JSON, CycloneDX JSON or syft JSON
// (what [Encode] writes, and what syft and other tools attest), into an SBOM of the
// image with digest subject (and platform, when known). The format is recognised
// from the document itself, and returned. A document in none of them is an error
// wrapping [ErrUnknownFormat]; one that names its format but does not parse, a
// plain error. Decode holds the document and syft's model of it in memory: bound
// doc's size before (an attestation verifier bounds its payloads).
func Decode(doc []byte, subject v1.Hash, platform *v1.Platform) (*scan.SBOM, Format, error) {
	for _, d := range []struct {
		f   Format
		dec syftsbom.FormatDecoder
	}{
		{SPDXJSON, spdxjson.NewFormatDecoder()},
		{CycloneDXJSON, cyclonedxjson.NewFormatDecoder()},
		{SyftJSON, syftjson.NewFormatDecoder()},
	} {
		if id, _ := d.dec.Identify(bytes.NewReader(doc)); id == "" {
			continue
		}
		s, _, _, err := d.dec.Decode(bytes.NewReader(doc))
		if err != nil {
			return nil, d.f, fmt.Errorf("decode %s SBOM: %w", d.f, err)
		}
		if s == nil {
			return nil, d.f, fmt.Errorf("decode %s SBOM: empty document", d.f)
		}
		return scan.NewSBOM(subject, platform, *s), d.f, nil
	}
	return nil, "", fmt.Errorf("decode SBOM: %w (want %s, %s or %s)", ErrUnknownFormat, SPDXJSON, CycloneDXJSON, SyftJSON)
}
