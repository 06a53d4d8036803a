package sbom

import (
	"bytes"
	"fmt"

	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/sign"
)

// Predicate returns s as the predicate of an SBOM attestation in format f: SPDXJSON
// (sign.PredicateSPDX) or CycloneDXJSON (sign.PredicateCycloneDX). Its Subject is
// the image s describes (s.Subject), so an attester given an index's digest puts it
// on that platform image: a caller attests every platform's SBOM with the index's
// digest alone.
func Predicate(s *scan.SBOM, f Format) (sign.Predicate, error) {
	var typ string
	switch f {
	case SPDXJSON:
		typ = sign.PredicateSPDX
	case CycloneDXJSON:
		typ = sign.PredicateCycloneDX
	default:
		return sign.Predicate{}, fmt.Errorf("SBOM predicate: format %q has no attestation predicate type (want %s or %s)", f, SPDXJSON, CycloneDXJSON)
	}
	var b bytes.Buffer
	if err := Encode(&b, s, f); err != nil {
		return sign.Predicate{}, fmt.Errorf("SBOM predicate: %w", err)
	}
	return sign.Predicate{Type: typ, Body: b.Bytes(), Subject: s.Subject}, nil
}
