package sbom

import (
	"fmt"
	"io"

	syftsbom "github.com/anchore/syft/syft/sbom"

	"github.com/anchore/syft/syft/format/cyclonedxjson"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/format/syftjson"

	"github.com/shipkit/shipkit/scan"
)

// Format is an SBOM document format that [Encode] writes.
type Format string

// The formats [Encode] writes, each with syft's own encoder.
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

// encoder returns syft's encoder for f.
func encoder(f Format) (syftsbom.FormatEncoder, error) {
	switch f {
	case SPDXJSON:
		return spdxjson.NewFormatEncoderWithConfig(spdxjson.EncoderConfig{Version: SPDXVersion, DefaultVersion: SPDXVersion})
	case CycloneDXJSON:
		return cyclonedxjson.NewFormatEncoderWithConfig(cyclonedxjson.EncoderConfig{Version: CycloneDXVersion})
	case SyftJSON:
		return syftjson.NewFormatEncoderWithConfig(syftjson.DefaultEncoderConfig())
	default:
		return nil, fmt.Errorf("unknown SBOM format %q (want %s, %s or %s)", f, SPDXJSON, CycloneDXJSON, SyftJSON)
	}
}

// Encode writes s to w in format f.
func Encode(w io.Writer, s *scan.SBOM, f Format) error {
	if s == nil {
		return fmt.Errorf("encode %s: no SBOM", f)
	}
	enc, err := encoder(f)
	if err != nil {
		return err
	}
	if err := enc.Encode(w, *s.Syft()); err != nil {
		return fmt.Errorf("encode %s SBOM of %s: %w", f, s.Subject, err)
	}
	return nil
}
