package cosign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	cosigntypes "github.com/sigstore/cosign/v2/pkg/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shipkit/shipkit/sign"
)

// The names cosign v3 writes a sigstore bundle to a registry with (cosign's
// pkg/oci/remote WriteAttestationNewBundleFormat, specs/BUNDLE_SPEC.md): an OCI 1.1
// image manifest whose artifactType and only layer are the bundle's media type,
// whose config is the empty JSON object, whose subject is the signed image, and
// whose annotations name the bundle's content and predicate type.
const (
	// bundleMediaType is the media type of the bundles written (v0.3).
	bundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// bundleMediaTypePrefix starts every sigstore bundle media type, of any version.
	bundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	// annBundleContent and annBundlePredicateType are the referrer manifest's
	// annotations (the content is "dsse-envelope" for what cosign v3 writes).
	annBundleContent       = "dev.sigstore.bundle.content"
	annBundlePredicateType = "dev.sigstore.bundle.predicateType"
	annCreated             = "org.opencontainers.image.created"
	// emptyMediaType is the config media type of an OCI artifact without config.
	emptyMediaType = "application/vnd.oci.empty.v1+json"
	// cosignSignPredicateType is the predicate type of an image signature in
	// bundle form: cosign v3 sign signs an in-toto statement with this type, an
	// empty predicate and the image's digest as subject.
	cosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
	// statementV1 is the in-toto statement type of bundles.
	statementV1 = "https://in-toto.io/Statement/v1"
)

// Format is the registry layout a [Signer] writes signatures and attestations in.
// A [Verifier] reads both, without being told which.
type Format int

const (
	// FormatDefault is [FormatBundle], but for a key with a certificate of a
	// company PKI ([PrivateKey.WithCertificate]), which keeps [FormatLegacy]: a
	// bundle carries no certificate chain (bundle v0.3 holds the leaf alone), so
	// its identity under [sign.TrustedIdentity] roots is verified from the legacy
	// layout's chain annotation. A keyless key (KeylessSigner.Key) always writes
	// bundles.
	FormatDefault Format = iota
	// FormatBundle writes sigstore bundles (application/vnd.dev.sigstore.bundle.v0.3+json)
	// as OCI 1.1 artifacts whose subject is the image, found through the referrers
	// API or, on a registry without it, the referrers tag schema (sha256-HEX): what
	// cosign v3 writes and verifies by default.
	FormatBundle
	// FormatLegacy writes cosign v2's layout: the tags sha256-HEX.sig (simple
	// signing payloads) and sha256-HEX.att (DSSE envelopes).
	FormatLegacy
)

// String returns "default", "bundle" or "legacy".
func (f Format) String() string {
	switch f {
	case FormatDefault:
		return "default"
	case FormatBundle:
		return "bundle"
	case FormatLegacy:
		return "legacy"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat returns the Format named s: "bundle", "legacy" or "" / "default".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "default":
		return FormatDefault, nil
	case "bundle":
		return FormatBundle, nil
	case "legacy":
		return FormatLegacy, nil
	}
	return 0, fmt.Errorf("signature format %q: want bundle or legacy: %w", s, ErrInvalidOption)
}

// WithFormat sets the layout a [Signer] writes (default [FormatDefault]: sigstore
// bundles, as cosign v3). Verifiers ignore it: they read both layouts.
func WithFormat(f Format) Option {
	return func(o *options) {
		if f < FormatDefault || f > FormatLegacy {
			o.limits.invalid.Addf("cosign.WithFormat(%d): unknown format", int(f))
			return
		}
		o.format = f
	}
}

// bundleFormat reports whether s writes sigstore bundles.
func (s *Signer) bundleFormat() bool {
	switch s.opts.format {
	case FormatBundle:
		return true
	case FormatLegacy:
		return false
	}
	return s.key.cert == nil || s.key.finish != nil
}

// bundleStatement is an in-toto v1 statement as cosign v3 writes it in a bundle.
type bundleStatement struct {
	Type          string          `json:"_type"`
	Subject       []bundleSubject `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

type bundleSubject struct {
	Name        string            `json:"name,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// signBundle signs the image d in bundle form: an in-toto statement of type
// https://sigstore.dev/cosign/sign/v1 about d's digest (with the annotations),
// as cosign v3 sign writes it. It returns d's descriptor.
func (s *Signer) signBundle(ctx context.Context, d name.Digest, o sign.SignOptions) (*remote.Descriptor, error) {
	alg, hex, _ := strings.Cut(d.DigestStr(), ":")
	st, err := json.Marshal(bundleStatement{
		Type:          statementV1,
		Subject:       []bundleSubject{{Digest: map[string]string{alg: hex}, Annotations: o.Annotations}},
		PredicateType: cosignSignPredicateType,
		Predicate:     json.RawMessage(`{}`),
	})
	if err != nil {
		return nil, fmt.Errorf("encode statement: %w", err)
	}
	subject, _, err := s.pushBundle(ctx, d, st, cosignSignPredicateType)
	return subject, err
}

// attestBundle attests p about d in bundle form.
func (s *Signer) attestBundle(ctx context.Context, d name.Digest, p sign.Predicate, o sign.AttestOptions) error {
	alg, hex, _ := strings.Cut(d.DigestStr(), ":")
	st, err := json.Marshal(bundleStatement{
		Type:          statementV1,
		Subject:       []bundleSubject{{Name: d.Context().Name(), Digest: map[string]string{alg: hex}}},
		PredicateType: p.Type,
		Predicate:     p.Body,
	})
	if err != nil {
		return fmt.Errorf("encode statement: %w", err)
	}
	_, pushed, err := s.pushBundle(ctx, d, st, p.Type)
	if err != nil {
		return err
	}
	if o.Replace {
		return s.replaceBundles(ctx, d, p.Type, pushed)
	}
	return nil
}

// newBundle signs the in-toto statement st as a DSSE envelope and returns the
// sigstore bundle (v0.3, JSON) that holds it with the key's verification material:
// its certificate when it has one, else a hint of its public key.
func (s *Signer) newBundle(ctx context.Context, st []byte) ([]byte, error) {
	raw, err := dsse.WrapSigner(s.key.sv, cosigntypes.IntotoPayloadType).SignMessage(bytes.NewReader(st), sigopts.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("sign statement with %s: %w", s.key, err)
	}
	var env struct {
		Signatures []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || len(env.Signatures) != 1 {
		return nil, fmt.Errorf("sign statement with %s: unexpected DSSE envelope", s.key)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		return nil, fmt.Errorf("sign statement with %s: signature is not base64", s.key)
	}
	vm := &protobundle.VerificationMaterial{}
	if s.key.cert != nil {
		vm.Content = &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: s.key.cert.Raw}}
	} else {
		hint, err := s.keyHint()
		if err != nil {
			return nil, err
		}
		vm.Content = &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: hint}}
	}
	b := &protobundle.Bundle{
		MediaType:            bundleMediaType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload:     st,
			PayloadType: cosigntypes.IntotoPayloadType,
			Signatures:  []*protodsse.Signature{{Sig: sig, Keyid: env.Signatures[0].KeyID}},
		}},
	}
	if s.key.finish != nil {
		if err := s.key.finish(ctx, b); err != nil {
			return nil, err
		}
	}
	out, err := protojson.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode bundle: %w", err)
	}
	return out, nil
}

// referrerManifest is an OCI 1.1 image manifest with the artifactType field
// (go-containerregistry's v1.Manifest has none).
type referrerManifest struct {
	v1.Manifest
	ArtifactType string `json:"artifactType,omitempty"`
}

// taggable is a manifest go-containerregistry's remote.Put writes as is.
type taggable struct {
	raw []byte
	mt  types.MediaType
}

func (t taggable) RawManifest() ([]byte, error)        { return t.raw, nil }
func (t taggable) MediaType() (types.MediaType, error) { return t.mt, nil }

// pushBundle signs st, and pushes the bundle to d's repository as an OCI 1.1
// artifact whose subject is d, with cosign v3's annotations. go-containerregistry
// adds it to the referrers tag (sha256-HEX) when the registry has no referrers
// API. It returns d's descriptor and the digest of the referrer pushed.
func (s *Signer) pushBundle(ctx context.Context, d name.Digest, st []byte, predicateType string) (*remote.Descriptor, v1.Hash, error) {
	ro := s.opts.remoteOptions(ctx)
	subject, err := remote.Get(d, ro...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return nil, v1.Hash{}, fmt.Errorf("image not found in the registry (push it before signing): %w", err)
	}
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("fetch image: %w", err)
	}
	// The same key's bundle of the same statement is not pushed twice (a pipeline
	// that signs a digest again, an attestation repeated): the signer marks its
	// referrers with its key's fingerprint and the statement's digest, as the
	// legacy layout's duplicate detector compares payloads. A mark is only a hint
	// (anyone who can push can copy it): the signer skips only when the marked
	// referrer's bundle verifies as this key's bundle of st about d (ownBundle);
	// any other is ignored, and the bundle is pushed.
	fp, _ := s.key.TrustedKey("").Fingerprint()
	sum := sha256.Sum256(st)
	mark := fp + " sha256:" + hex.EncodeToString(sum[:])
	if h, ok := s.findMarked(ctx, d, subject.Digest, mark, st); ok {
		return subject, h, nil
	}
	b, err := s.newBundle(ctx, st)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	layer := static.NewLayer(b, types.MediaType(bundleMediaType))
	config := static.NewLayer([]byte("{}"), types.MediaType(emptyMediaType))
	for _, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(d.Repository, l, ro...); err != nil {
			return nil, v1.Hash{}, fmt.Errorf("push bundle: %w", err)
		}
	}
	desc := func(l v1.Layer) v1.Descriptor {
		h, _ := l.Digest() // static layers: no error
		n, _ := l.Size()
		mt, _ := l.MediaType()
		return v1.Descriptor{MediaType: mt, Digest: h, Size: n}
	}
	cfg := desc(config)
	cfg.ArtifactType = bundleMediaType
	m := referrerManifest{Manifest: v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        cfg,
		Layers:        []v1.Descriptor{desc(layer)},
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations: map[string]string{
			annCreated:             time.Now().UTC().Format(time.RFC3339),
			annBundleContent:       "dsse-envelope",
			annBundlePredicateType: predicateType,
			annShipkitStatement:    mark,
		},
	}, ArtifactType: bundleMediaType}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("encode referrer manifest: %w", err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if err := remote.Put(d.Context().Digest(h.String()), taggable{raw: raw, mt: types.OCIManifestSchema1}, ro...); err != nil {
		return nil, v1.Hash{}, fmt.Errorf("push bundle: %w", err)
	}
	return subject, h, nil
}

// annShipkitStatement marks a bundle referrer this package pushed with its
// signer's key fingerprint and its statement's digest (see pushBundle).
const annShipkitStatement = "dev.shipkit.sign.statement"

// findMarked returns a bundle referrer of d marked mark whose bundle is this
// signer's bundle of the statement st about the image digest sub (see ownBundle).
// A referrers list that cannot be read finds none (the bundle is pushed), and so
// does a key that signs keylessly: its bundles carry log entries and timestamps
// the signer cannot check here, so a copy stripped of them is not told apart.
func (s *Signer) findMarked(ctx context.Context, d name.Digest, sub v1.Hash, mark string, st []byte) (v1.Hash, bool) {
	if s.key.finish != nil || s.key.cert != nil {
		return v1.Hash{}, false
	}
	ro := s.opts.remoteOptions(ctx)
	idx, err := remote.Referrers(d, ro...)
	if err != nil {
		return v1.Hash{}, false
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Hash{}, false
	}
	tried := 0
	for _, m := range im.Manifests {
		if m.Annotations[annShipkitStatement] != mark {
			continue
		}
		if tried++; tried > maxMarkedTried {
			break // a flood of forged marks costs a bounded number of reads
		}
		if s.ownBundle(ctx, d, m.Digest, sub, st) {
			return m.Digest, true
		}
	}
	return v1.Hash{}, false
}

// maxMarkedTried bounds how many referrers carrying the signer's mark it reads.
const maxMarkedTried = 4

// maxOwnBundleSize bounds the bundle of a marked referrer the signer reads: its
// own key-made bundles are a few KiB.
const maxOwnBundleSize = 1 << 20

// ownBundle reports whether the referrer h of d is what pushBundle writes for
// this signer's key (made without a certificate) and the statement st: a
// manifest whose subject is sub and whose only layer is a v0.3 bundle carrying
// the key's hint, no log entry or timestamp, and a DSSE envelope of exactly st
// with one signature that verifies under the key. Anything else, or anything
// that cannot be read, is not the signer's.
func (s *Signer) ownBundle(ctx context.Context, d name.Digest, h, sub v1.Hash, st []byte) bool {
	img, err := remote.Image(d.Context().Digest(h.String()), s.opts.remoteOptions(ctx)...)
	if err != nil {
		return false
	}
	m, err := img.Manifest()
	if err != nil || m.Subject == nil || m.Subject.Digest != sub || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != types.MediaType(bundleMediaType) || m.Layers[0].Size > maxOwnBundleSize {
		return false
	}
	l, err := img.LayerByDigest(m.Layers[0].Digest)
	if err != nil {
		return false
	}
	rc, err := l.Compressed() // verified against the digest by go-containerregistry
	if err != nil {
		return false
	}
	raw, err := io.ReadAll(io.LimitReader(rc, maxOwnBundleSize+1))
	_ = rc.Close()
	if err != nil || len(raw) > maxOwnBundleSize {
		return false
	}
	var b protobundle.Bundle
	if err := protojson.Unmarshal(raw, &b); err != nil || b.GetMediaType() != bundleMediaType {
		return false
	}
	hint, err := s.keyHint()
	vm := b.GetVerificationMaterial()
	if err != nil || vm.GetPublicKey().GetHint() != hint || len(vm.GetTlogEntries()) > 0 ||
		len(vm.GetTimestampVerificationData().GetRfc3161Timestamps()) > 0 {
		return false
	}
	env := b.GetDsseEnvelope()
	if env.GetPayloadType() != cosigntypes.IntotoPayloadType || !bytes.Equal(env.GetPayload(), st) || len(env.GetSignatures()) != 1 {
		return false
	}
	pae := fmt.Sprintf("DSSEv1 %d %s %d ", len(env.GetPayloadType()), env.GetPayloadType(), len(st))
	msg := append([]byte(pae), st...)
	return s.key.sv.VerifySignature(bytes.NewReader(env.GetSignatures()[0].GetSig()), bytes.NewReader(msg), sigopts.WithContext(ctx)) == nil
}

// keyHint returns the public key hint of the signer's key in its bundles: the
// base64 SHA-256 digest of its public key's DER.
func (s *Signer) keyHint() (string, error) {
	pub, err := s.key.sv.PublicKey()
	if err != nil {
		return "", fmt.Errorf("%s: public key: %w", s.key, err)
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return "", fmt.Errorf("%s: public key: %w", s.key, err)
	}
	sum := sha256.Sum256(der)
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// replaceBundles deletes the bundle referrers of d that attest predicateType
// (isBundleReferrer: also from a registry that lists the config's media type as
// their artifact type) but keep, the one just pushed or found verified as the
// signer's, as [sign.WithReplace] asks, and drops them from the referrers tag
// (sha256-HEX) where the registry keeps one. A registry that
// refuses deletion (as some do by default) keeps them: the error says so.
func (s *Signer) replaceBundles(ctx context.Context, d name.Digest, predicateType string, keep v1.Hash) error {
	ro := s.opts.remoteOptions(ctx)
	idx, err := remote.Referrers(d, ro...)
	if err != nil {
		return fmt.Errorf("replace earlier attestations: list referrers: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("replace earlier attestations: list referrers: %w", err)
	}
	gone := map[v1.Hash]bool{}
	for _, m := range im.Manifests {
		if m.Digest == keep || !isBundleReferrer(m) || m.Annotations[annBundlePredicateType] != predicateType {
			continue
		}
		if err := remote.Delete(d.Context().Digest(m.Digest.String()), ro...); err != nil {
			return fmt.Errorf("replace earlier attestations: delete %s: %w", m.Digest, err)
		}
		gone[m.Digest] = true
	}
	if len(gone) == 0 {
		return nil
	}
	tag := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1))
	fallback, err := remote.Index(tag, ro...)
	var te *transport.Error
	switch {
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		return nil // the registry has the referrers API
	case err != nil:
		return fmt.Errorf("replace earlier attestations: read %s: %w", tag, err)
	}
	kept := mutate.RemoveManifests(fallback, func(desc v1.Descriptor) bool { return gone[desc.Digest] })
	if err := remote.WriteIndex(tag, kept, ro...); err != nil {
		return fmt.Errorf("replace earlier attestations: write %s: %w", tag, err)
	}
	return nil
}
