package sign

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Predicate types of the statements shipkit attests. They are the URIs cosign
// (cosign attest --type spdxjson|cyclonedx|vuln|slsaprovenance1) writes, so policies
// written for cosign apply unchanged.
const (
	PredicateSPDX           = "https://spdx.dev/Document"
	PredicateCycloneDX      = "https://cyclonedx.org/bom"
	PredicateVuln           = "https://cosign.sigstore.dev/attestation/vuln/v1"
	PredicateSLSAProvenance = "https://slsa.dev/provenance/v1"
)

// BuildTypeShipkit is the SLSA buildType of provenance that [Provenance] writes.
const BuildTypeShipkit = "https://github.com/shipkit/shipkit/build/v1"

// Predicate is what an in-toto statement says about an image: a predicate type URI
// and the predicate's JSON.
type Predicate struct {
	// Type is the predicate type URI, e.g. [PredicateSLSAProvenance].
	Type string
	// Body is the predicate, a JSON value.
	Body json.RawMessage
	// Subject is the image the predicate is about when it is one platform image of
	// the index being attested: an [Attester] given the index's digest attaches the
	// statement to that image (index.Context().Digest(Subject)) after checking that
	// the index lists it. Zero means the digest passed to Attest itself. SBOM and
	// vulnerability report predicates made from a platform's SBOM or report carry
	// it, so a caller attests every platform with the index's digest alone.
	Subject v1.Hash
}

// Validate checks that the predicate has a type and a JSON object body.
func (p Predicate) Validate() error {
	if p.Type == "" {
		return errors.New("predicate has no type")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(p.Body, &obj); err != nil {
		return fmt.Errorf("predicate %s is not a JSON object: %w", p.Type, err)
	}
	return nil
}

// SPDX returns a predicate of an SPDX JSON document (e.g. written by the scan
// stage's SBOM), taken as is.
func SPDX(doc []byte) Predicate { return Predicate{Type: PredicateSPDX, Body: doc} }

// CycloneDX returns a predicate of a CycloneDX JSON BOM, taken as is.
func CycloneDX(bom []byte) Predicate { return Predicate{Type: PredicateCycloneDX, Body: bom} }

// OCI annotation keys the build stage writes on the images it builds, read by
// [ProvenanceFromAnnotations].
const (
	annotationBaseName   = "org.opencontainers.image.base.name"
	annotationBaseDigest = "org.opencontainers.image.base.digest"
	annotationSource     = "org.opencontainers.image.source"
	annotationRevision   = "org.opencontainers.image.revision"
)

// Provenance is what the build stage knows about how an image was made, the input
// of a SLSA provenance v1 predicate.
type Provenance struct {
	// BuilderID identifies the build platform (SLSA runDetails.builder.id), e.g. the
	// URI of the CI workflow. Required.
	BuilderID string
	// BuildType says how to read the parameters; empty means [BuildTypeShipkit].
	BuildType string
	// SourceRepository is the source's repository URI (e.g.
	// "https://github.com/org/app.git") and SourceRevision its commit. Required.
	SourceRepository, SourceRevision string
	// BaseImage and BaseDigest ("sha256:…") name the base image, recorded as a
	// resolved dependency when BaseDigest is set.
	BaseImage, BaseDigest string
	// Parameters are the build's external parameters (platforms, flags, …).
	Parameters map[string]any
	// InvocationID identifies this run of the builder, e.g. a CI job URL.
	InvocationID string
	// StartedOn and FinishedOn are when the build ran.
	StartedOn, FinishedOn time.Time
}

// ProvenanceFromAnnotations fills the source and base image fields of a Provenance
// from the OCI annotations the build stage writes on an image index or image
// (org.opencontainers.image.source, .revision, .base.name, .base.digest).
func ProvenanceFromAnnotations(a map[string]string) Provenance {
	return Provenance{
		SourceRepository: a[annotationSource],
		SourceRevision:   a[annotationRevision],
		BaseImage:        a[annotationBaseName],
		BaseDigest:       a[annotationBaseDigest],
	}
}

// Predicate returns the SLSA provenance v1 predicate
// (https://slsa.dev/provenance/v1). The source is both an external parameter
// (buildDefinition.externalParameters.source) and a resolved dependency
// ("git+REPO@REVISION"); the base image is a resolved dependency with its digest.
func (p Provenance) Predicate() (Predicate, error) {
	if p.BuilderID == "" {
		return Predicate{}, errors.New("SLSA provenance: no builder id")
	}
	if p.SourceRepository == "" || p.SourceRevision == "" {
		return Predicate{}, errors.New("SLSA provenance: source repository and revision are required")
	}
	buildType := p.BuildType
	if buildType == "" {
		buildType = BuildTypeShipkit
	}
	ext := map[string]any{}
	for k, v := range p.Parameters {
		ext[k] = v
	}
	ext["source"] = slsaSource{Repository: p.SourceRepository, Revision: p.SourceRevision}
	deps := []slsaResource{{
		URI:    "git+" + p.SourceRepository + "@" + p.SourceRevision,
		Digest: map[string]string{"gitCommit": p.SourceRevision},
	}}
	if p.BaseDigest != "" {
		alg, hex, ok := strings.Cut(p.BaseDigest, ":")
		if !ok || hex == "" {
			return Predicate{}, fmt.Errorf("SLSA provenance: base image digest %q is not ALGORITHM:HEX", p.BaseDigest)
		}
		uri := p.BaseImage
		if uri == "" {
			uri = "base image"
		}
		deps = append(deps, slsaResource{URI: uri, Digest: map[string]string{alg: hex}, Name: "base image"})
	}
	var pred slsaPredicate
	pred.BuildDefinition.BuildType = buildType
	pred.BuildDefinition.ExternalParameters = ext
	pred.BuildDefinition.ResolvedDependencies = deps
	pred.RunDetails.Builder.ID = p.BuilderID
	pred.RunDetails.Metadata.InvocationID = p.InvocationID
	pred.RunDetails.Metadata.StartedOn = timePtr(p.StartedOn)
	pred.RunDetails.Metadata.FinishedOn = timePtr(p.FinishedOn)
	b, err := json.Marshal(pred)
	if err != nil {
		return Predicate{}, fmt.Errorf("SLSA provenance: %w", err)
	}
	return Predicate{Type: PredicateSLSAProvenance, Body: b}, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// slsaPredicate is the part of SLSA provenance v1 that shipkit writes and reads.
type slsaPredicate struct {
	BuildDefinition struct {
		BuildType            string         `json:"buildType"`
		ExternalParameters   map[string]any `json:"externalParameters"`
		InternalParameters   map[string]any `json:"internalParameters,omitempty"`
		ResolvedDependencies []slsaResource `json:"resolvedDependencies,omitempty"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder struct {
			ID string `json:"id"`
		} `json:"builder"`
		Metadata struct {
			InvocationID string     `json:"invocationId,omitempty"`
			StartedOn    *time.Time `json:"startedOn,omitempty"`
			FinishedOn   *time.Time `json:"finishedOn,omitempty"`
		} `json:"metadata"`
	} `json:"runDetails"`
}

type slsaSource struct {
	Repository string `json:"repository"`
	Revision   string `json:"revision"`
}

type slsaResource struct {
	URI    string            `json:"uri"`
	Digest map[string]string `json:"digest"`
	Name   string            `json:"name,omitempty"`
}
