// Package fleet re-checks what runs in a fleet of clusters for vulnerabilities
// without pulling a layer: for each image of a deploy/fleet inventory it fetches
// and verifies the image's SBOM attestation ([sign.Verifier]: trusted keys or
// identities, the verifier's signature layouts), decodes the SBOM (scan/sbom's
// [sbom.Decode]: SPDX, CycloneDX or syft JSON) and matches it with a
// [scan.Scanner] (a scan/vuln database: one older than its max age is refused and
// stops the run). Images with no verified SBOM are listed as such (unsigned,
// untrusted signer, no SBOM, malformed SBOM), never scanned as if trusted; only a
// caller's [Fallback] catalogs them from their layers, and their findings say so.
//
// The result is one [Report]: per advisory, the images, platforms, packages, fix
// versions and workloads (cluster, namespace, kind, name) affected; per image, its
// status; the difference from a previous report ([Compare], new and fixed), which
// the caller keeps as JSON ([Report.WriteJSON], [ReadJSON]) and feeds back;
// writers for a table and SARIF 2.1.0; and [Report.FailOn] as elsewhere.
package fleet

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/internal/parallel"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/sign"
)

// ErrInvalidOption is wrapped by the error about options that cannot work; it is
// the one sentinel of every stage (deploy.ErrInvalidOption is the same value).
var ErrInvalidOption = option.ErrInvalid

// Predicate types read as SBOMs, besides [sign.PredicateSPDX] and
// [sign.PredicateCycloneDX] (and their versioned forms).
const (
	// PredicateSyft is the predicate type of a syft JSON SBOM attestation.
	PredicateSyft = "https://syft.dev/bom"
	// PredicateCosignCustom is cosign's --type custom, whose predicate holds the
	// document as a string in Data (how syft attest -o syft-json attests).
	PredicateCosignCustom = "https://cosign.sigstore.dev/attestation/v1"
)

// Fallback catalogs an image from its layers, for the images with no verified
// SBOM when the caller asks for it ([Options.Fallback]).
type Fallback interface {
	Catalog(ctx context.Context, d name.Digest) ([]*scan.SBOM, error)
}

// LayerFallback returns a [Fallback] that pulls the image (every platform of an
// index) with opts and catalogs it with c.
func LayerFallback(c *sbom.Cataloger, opts ...remote.Option) Fallback {
	return layerFallback{c: c, opts: opts}
}

type layerFallback struct {
	c    *sbom.Cataloger
	opts []remote.Option
}

func (f layerFallback) Catalog(ctx context.Context, d name.Digest) ([]*scan.SBOM, error) {
	return f.c.CatalogRemote(ctx, d, f.opts...)
}

// DefaultConcurrency is how many images are re-checked at once unless
// [Options.Concurrency] says otherwise: GOMAXPROCS, at most 8.
func DefaultConcurrency() int { return min(runtime.GOMAXPROCS(0), 8) }

// Options configure [Rescan]. Verifier and Scanner are required.
type Options struct {
	// Verifier verifies each image's signatures and attestations (a sign/cosign
	// Verifier with the policy's trusted keys or identities). Its payload limit
	// bounds the size of an SBOM read.
	Verifier sign.Verifier
	// Scanner matches SBOMs (a scan/vuln DB opened with its max age).
	Scanner scan.Scanner
	// Fallback, when set, catalogs the images with no verified SBOM from their
	// layers; their findings are marked [SourceLayers]. nil: they are only listed.
	Fallback Fallback
	// Concurrency bounds how many images are re-checked at once; each holds at
	// most one SBOM in memory at a time (0: [DefaultConcurrency]; negative:
	// refused).
	Concurrency int
	// Remote are the options to reach registries with (authentication,
	// transport) when an image is denied as unsigned, to tell an image gone from
	// the registry (a HEAD of its manifest, [Failed]) from one without a
	// signature. nil: anonymous, default transport.
	Remote []remote.Option
	// Previous, when set, is compared with the new report ([Report.Diff]).
	Previous *Report
	// Observer receives the step (stage scan, step "fleet"): a progress event per
	// image. nil: none.
	Observer observe.Observer
	// Now returns the report's time (nil: time.Now).
	Now func() time.Time
}

// Status says what became of one image.
type Status string

// The statuses of an image.
const (
	// Scanned: its SBOM attestation verified and its SBOM was matched.
	Scanned Status = "scanned"
	// Unverified: the verifier denied it (unsigned, signed or attested by no
	// trusted signer, ...): see its reasons.
	Unverified Status = "unverified"
	// NoSBOM: it verified but carries no SBOM attestation (for an index: a
	// platform image has none of its own and the index has none; its reason names
	// the platform).
	NoSBOM Status = "no-sbom"
	// MalformedSBOM: its verified SBOM attestation cannot be decoded.
	MalformedSBOM Status = "malformed-sbom"
	// Failed: it could not be checked (image gone from the registry, registry
	// unreachable, a scan error).
	Failed Status = "failed"
)

// Sources of findings.
const (
	// SourceAttestation: from a verified SBOM attestation.
	SourceAttestation = "attestation"
	// SourceLayers: from the image's layers, by the [Fallback], for an image with
	// no verified SBOM.
	SourceLayers = "layers"
)

// Rescan re-checks every image of inv (see the package documentation) and returns
// the fleet report. An image that cannot be checked is reported with its status;
// the error is for options that cannot work, the caller's context ending and a
// scanner that refuses its database (too old, closed: wrapping
// vuln.ErrDBTooOld, vuln.ErrClosed), which would refuse every image.
func Rescan(ctx context.Context, inv *deployfleet.Inventory, opts Options) (*Report, error) {
	var bad option.List
	if opts.Verifier == nil {
		bad.Addf("Verifier is required")
	}
	if opts.Scanner == nil {
		bad.Addf("Scanner is required")
	}
	if opts.Concurrency < 0 {
		bad.Addf("Concurrency %d is negative (0 means the default)", opts.Concurrency)
	}
	if err := bad.Err("fleet rescan"); err != nil {
		return nil, err
	}
	if inv == nil {
		inv = &deployfleet.Inventory{}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	workers := cmp.Or(opts.Concurrency, DefaultConcurrency())
	step := observe.StartStep(opts.Observer, observe.StageScan, "fleet", int64(len(inv.Images)),
		fmt.Sprintf("re-check %d images", len(inv.Images)))
	results := make([]imageResult, len(inv.Images))
	err := parallel.Do(ctx, workers, len(inv.Images), func(ctx context.Context, i int) error {
		r, err := check(ctx, inv.Images[i], opts)
		if err != nil {
			return err
		}
		results[i] = r
		step.Progress(fmt.Sprintf("%s: %s, %d findings", r.status.Image, r.status.Status, r.status.Findings))
		return nil
	})
	if err != nil {
		return nil, step.Fail(fmt.Errorf("fleet rescan: %w", err))
	}
	rep := assemble(inv, results, now())
	if opts.Previous != nil {
		rep.Diff = Compare(opts.Previous, rep)
	}
	step.Finish(fmt.Sprintf("%d advisories in %d images; %d not verified", len(rep.Advisories), len(rep.Images), len(rep.Unverified())))
	return rep, nil
}

// imageResult is one image's status and findings.
type imageResult struct {
	status   ImageStatus
	findings []platformFinding
	tool     *report.Tool
}

type platformFinding struct {
	f        report.Finding
	platform string
	source   string
}

// sbomTarget is one image (or platform image) and its verified attestations:
// its own, and the index's (fallback, for a platform image without its own SBOM).
type sbomTarget struct {
	digest   v1.Hash
	platform *v1.Platform
	atts     []sign.Attestation
	fallback []sign.Attestation
}

// name is how reasons name the target: its platform, or its digest.
func (t sbomTarget) name() string {
	if t.platform != nil {
		return "platform " + t.platform.String() + " (" + t.digest.String() + ")"
	}
	return t.digest.String()
}

func check(ctx context.Context, img deployfleet.Image, opts Options) (imageResult, error) {
	r := imageResult{status: ImageStatus{Image: img.Digest, Uses: img.Uses}}
	fail := func(s Status, msg string) {
		r.status.Status = s
		if msg != "" {
			r.status.Reasons = append(r.status.Reasons, Reason{Code: string(s), Message: msg})
		}
	}
	d, err := img.Ref()
	if err != nil {
		fail(Failed, fmt.Sprintf("not a reference by digest: %v", err))
		return r, nil
	}
	v, err := opts.Verifier.Verify(ctx, d)
	var denied *sign.DeniedError
	switch {
	case ctx.Err() != nil:
		return r, ctx.Err()
	case errors.As(err, &denied):
		r.status.Status = Unverified
		for _, re := range denied.Reasons {
			r.status.Reasons = append(r.status.Reasons, Reason{Code: string(re.Code), Message: re.Message})
		}
		if slices.ContainsFunc(denied.Reasons, func(re sign.Reason) bool { return re.Code == sign.ReasonUnsigned }) {
			if msg := gone(ctx, d, opts.Remote); msg != "" {
				r.status.Reasons = nil
				fail(Failed, msg)
			}
		}
	case err != nil:
		fail(Failed, fmt.Sprintf("verify: %v", err))
	case v == nil:
		fail(Failed, "verify: the verifier returned nothing")
	default:
		if err := r.scanAttested(ctx, d, v, opts.Scanner); err != nil {
			return r, err
		}
	}
	if r.status.Status != Scanned && r.status.Status != Failed && opts.Fallback != nil {
		if err := r.scanLayers(ctx, d, opts); err != nil {
			return r, err
		}
	}
	return r, nil
}

// gone returns why an image is not in its registry, or "" when it is (or when the
// registry cannot say).
func gone(ctx context.Context, d name.Digest, opts []remote.Option) string {
	_, err := remote.Head(d, append(slices.Clone(opts), remote.WithContext(ctx))...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return "the image is not in its registry (manifest unknown)"
	}
	return ""
}

// scanAttested decodes and matches the verified SBOM of each platform.
func (r *imageResult) scanAttested(ctx context.Context, d name.Digest, v *sign.Verified, sc scan.Scanner) error {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil { // name.Digest checked the digest already
		return fmt.Errorf("image %s: %w", d, err)
	}
	targets := []sbomTarget{{digest: h, atts: v.Attestations}}
	if len(v.Platforms) > 0 {
		targets = targets[:0]
		for _, p := range v.Platforms {
			ph, err := v1.NewHash(p.Digest.DigestStr())
			if err != nil {
				continue
			}
			targets = append(targets, sbomTarget{digest: ph, platform: p.Platform, atts: p.Attestations, fallback: v.Attestations})
		}
	}
	var sboms []*scan.SBOM
	var malformed, missing []string
	for _, t := range targets {
		// A platform's own SBOM describes it; the index's is read only when the
		// platform has none.
		s, format, n, errs := decodeFirst(t.digest, t.platform, t.atts)
		if n == 0 {
			s, format, n, errs = decodeFirst(t.digest, t.platform, t.fallback)
		}
		switch {
		case n == 0:
			missing = append(missing, t.name())
		case s == nil:
			malformed = append(malformed, errs...)
		default:
			r.status.SBOMFormats = appendNew(r.status.SBOMFormats, string(format))
			sboms = append(sboms, s)
		}
	}
	if len(sboms) < len(targets) {
		r.status.Status = NoSBOM
		if len(malformed) > 0 {
			r.status.Status = MalformedSBOM
		}
		for _, p := range malformed {
			r.status.Reasons = append(r.status.Reasons, Reason{Code: string(MalformedSBOM), Message: p})
		}
		if len(missing) == len(targets) && len(targets) == 1 {
			r.status.Reasons = append(r.status.Reasons, Reason{Code: string(NoSBOM), Message: "no SBOM attestation by a trusted signer"})
		} else if len(missing) > 0 {
			r.status.Reasons = append(r.status.Reasons, Reason{Code: string(NoSBOM),
				Message: "no SBOM attestation by a trusted signer for " + strings.Join(missing, ", ")})
		}
		return nil
	}
	r.status.Status, r.status.Source = Scanned, SourceAttestation
	return r.match(ctx, sboms, sc, SourceAttestation)
}

// scanLayers catalogs an image with no verified SBOM from its layers.
func (r *imageResult) scanLayers(ctx context.Context, d name.Digest, opts Options) error {
	sboms, err := opts.Fallback.Catalog(ctx, d)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.status.Reasons = append(r.status.Reasons, Reason{Code: "fallback", Message: fmt.Sprintf("catalog from layers: %v", err)})
		return nil
	}
	r.status.Source = SourceLayers
	return r.match(ctx, sboms, opts.Scanner, SourceLayers)
}

// match scans each SBOM; a refused database stops the run.
func (r *imageResult) match(ctx context.Context, sboms []*scan.SBOM, sc scan.Scanner, source string) error {
	for _, s := range sboms {
		rep, err := sc.Scan(ctx, s)
		switch {
		case errors.Is(err, vuln.ErrDBTooOld), errors.Is(err, vuln.ErrClosed), ctx.Err() != nil:
			return cmp.Or(ctx.Err(), err)
		case err != nil:
			r.status.Status = Failed
			r.status.Reasons = append(r.status.Reasons, Reason{Code: string(Failed), Message: fmt.Sprintf("scan: %v", err)})
			r.findings = nil
			return nil
		}
		if r.tool == nil && rep.Tool != nil {
			t := *rep.Tool
			t.StartedOn, t.FinishedOn = time.Time{}, time.Time{}
			r.tool = &t
		}
		platform := rep.Platform
		if platform == "" && s.Platform != nil {
			platform = s.Platform.String()
		}
		for _, f := range rep.Findings {
			r.findings = append(r.findings, platformFinding{f: f, platform: platform, source: source})
		}
	}
	r.status.Findings = len(r.findings)
	return nil
}

// decodeFirst decodes the first SBOM attestation among atts that decodes, in the
// order SPDX, CycloneDX, syft, as the SBOM of digest (platform); n counts the SBOM
// attestations, errs says why the others did not decode.
func decodeFirst(digest v1.Hash, platform *v1.Platform, atts []sign.Attestation) (s *scan.SBOM, f sbom.Format, n int, errs []string) {
	atts = slices.Clone(atts)
	slices.SortStableFunc(atts, func(a, b sign.Attestation) int {
		return cmp.Compare(sbomRank(a.PredicateType), sbomRank(b.PredicateType))
	})
	for _, a := range atts {
		if sbomRank(a.PredicateType) == noSBOM {
			continue
		}
		n++
		doc, err := predicateDocument(a)
		if err == nil {
			s, f, err = sbom.Decode(doc, digest, platform)
		}
		if err == nil {
			return s, f, n, nil
		}
		errs = append(errs, fmt.Sprintf("%s SBOM (%s) of %s: %v", a.PredicateType, a.Signer, digest, err))
	}
	return nil, "", n, errs
}

const noSBOM = 99

func sbomRank(typ string) int {
	switch {
	case strings.HasPrefix(typ, sign.PredicateSPDX):
		return 0
	case strings.HasPrefix(typ, sign.PredicateCycloneDX):
		return 1
	case typ == PredicateSyft:
		return 2
	case typ == PredicateCosignCustom:
		return 3
	}
	return noSBOM
}

// predicateDocument returns the SBOM document of an attestation: the predicate,
// or the string cosign wraps a non-JSON or custom predicate in ({"Data": ...}).
func predicateDocument(a sign.Attestation) ([]byte, error) {
	if a.PredicateType == PredicateCosignCustom || bytes.HasPrefix(bytes.TrimSpace(a.Predicate), []byte(`{"Data"`)) {
		var wrapped struct {
			Data *string `json:"Data"`
		}
		if err := json.Unmarshal(a.Predicate, &wrapped); err == nil && wrapped.Data != nil {
			return []byte(*wrapped.Data), nil
		}
	}
	if len(a.Predicate) == 0 {
		return nil, errors.New("empty predicate")
	}
	return a.Predicate, nil
}

func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
