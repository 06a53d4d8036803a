package cosign

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/shipkit/shipkit/sign"
)

// Signer signs images and attests statements about them with one signing key (a
// cosign key, a KMS key, any sigstore signer; with or without a certificate),
// without a transparency log. It implements [sign.Signer] and [sign.Attester] and is safe for concurrent
// use (two writers of the same image's signatures race as with the cosign CLI: the
// last push of the .sig tag wins).
type Signer struct {
	key  *PrivateKey
	opts options
}

var (
	_ sign.Signer   = (*Signer)(nil)
	_ sign.Attester = (*Signer)(nil)
)

// NewSigner returns a Signer that signs with key.
func NewSigner(key *PrivateKey, opts ...Option) (*Signer, error) {
	if key == nil {
		return nil, errors.New("cosign signer: no private key")
	}
	o := newOptions(opts)
	if key.finish != nil && o.format == FormatLegacy {
		o.limits.invalid.Addf("cosign.WithFormat(FormatLegacy): a keyless key signs sigstore bundles only (its log entry and timestamps have no place in the legacy layout)")
	}
	if err := o.limits.validate(); err != nil {
		return nil, fmt.Errorf("cosign signer: %w", err)
	}
	return &Signer{key: key, opts: o}, nil
}

// Sign signs the image d and pushes the signature to d's repository in cosign's
// layout, next to any signatures already there (an identical one is not added
// twice). The signed payload is cosign's simple signing payload: d's digest and
// repository, and the annotations of [sign.WithAnnotations]. A key with a
// certificate attaches it and its chain; a certificate that is not valid now is an
// error, since every verifier would refuse the signature.
func (s *Signer) Sign(ctx context.Context, d name.Digest, opts ...sign.SignOption) error {
	var o sign.SignOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := sign.CheckDigest(d); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	return s.sign(ctx, d, o, 0)
}

// maxDepth bounds how deep recursive signing descends into nested indexes.
const maxDepth = 4

func (s *Signer) sign(ctx context.Context, d name.Digest, o sign.SignOptions, depth int) error {
	st := s.opts.start("sign " + d.String())
	var im *v1.IndexManifest
	var err error
	if s.bundleFormat() {
		im, err = s.signOneBundle(ctx, d, o)
	} else {
		im, err = s.signOneLegacy(ctx, d, o)
	}
	if err != nil {
		return st.Fail(fmt.Errorf("sign %s: %w", d, err))
	}
	st.Finish("signed by " + s.key.String())
	s.opts.log.DebugContext(ctx, "signed image", "digest", d.String(), "key", s.key.String())

	if !o.Recursive || im == nil {
		return nil
	}
	if depth >= maxDepth {
		return fmt.Errorf("sign %s: image indexes nested deeper than %d", d, maxDepth)
	}
	for _, m := range im.Manifests {
		if err := s.sign(ctx, d.Context().Digest(m.Digest.String()), o, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// signOneBundle signs d in bundle form; it returns d's index manifest when d is
// an image index.
func (s *Signer) signOneBundle(ctx context.Context, d name.Digest, o sign.SignOptions) (*v1.IndexManifest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.key.checkCertificate(time.Now()); err != nil {
		return nil, err
	}
	desc, err := s.signBundle(ctx, d, o)
	if err != nil || !desc.MediaType.IsIndex() {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("read index manifest: %w", err)
	}
	return im, nil
}

// signOneLegacy signs d and pushes the signature to its .sig tag; it returns d's
// index manifest when d is an image index.
func (s *Signer) signOneLegacy(ctx context.Context, d name.Digest, o sign.SignOptions) (*v1.IndexManifest, error) {
	se, err := s.signOne(ctx, d, o)
	if err != nil {
		return nil, err
	}
	idx, ok := se.(oci.SignedImageIndex)
	if !ok {
		return nil, nil
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read index manifest: %w", err)
	}
	return im, nil
}

// signOne signs d and pushes the signature; it returns d with its signatures.
func (s *Signer) signOne(ctx context.Context, d name.Digest, o sign.SignOptions) (oci.SignedEntity, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.key.checkCertificate(time.Now()); err != nil {
		return nil, err
	}
	se, err := signedEntity(ctx, d, &s.opts)
	if err != nil {
		return nil, err
	}
	ann := make(map[string]any, len(o.Annotations))
	for k, v := range o.Annotations {
		ann[k] = v
	}
	if len(ann) == 0 {
		ann = nil
	}
	payload, err := sigpayload.Cosign{Image: d, Annotations: ann}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("encode payload: %w", err)
	}
	raw, err := s.key.sv.SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.key, err)
	}
	sig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw), s.key.staticOptions()...)
	if err != nil {
		return nil, err
	}
	se, err = mutate.AttachSignatureToEntity(se, sig, mutate.WithDupeDetector(cremote.NewDupeDetector(s.key.sv)))
	if err != nil {
		return nil, fmt.Errorf("attach signature: %w", err)
	}
	if err := ociremote.WriteSignatures(d.Repository, se, s.opts.ociOptions(ctx)...); err != nil {
		return nil, fmt.Errorf("push signature: %w", err)
	}
	return se, nil
}

// staticOptions attaches the key's certificate and chain to a signature or
// attestation, in cosign's annotations.
func (k *PrivateKey) staticOptions() []static.Option {
	if k.cert == nil {
		return nil
	}
	return []static.Option{static.WithCertChain(k.CertificatePEM(), k.ChainPEM())}
}

// statement is an in-toto statement (v0.1, as cosign attest writes it).
type statement struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []subject       `json:"subject"`
	Predicate     json.RawMessage `json:"predicate"`
}

type subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

const statementV01 = "https://in-toto.io/Statement/v0.1"

// Attest signs an in-toto statement that says p about the image d (subject: d's
// repository and digest) as a DSSE envelope and pushes it to d's repository in
// cosign's layout (the .att tag), as cosign attest does. [sign.WithReplace] removes
// earlier attestations of the same predicate type.
//
// A predicate with a [sign.Predicate.Subject] is about one platform image of the
// index d: it is attested to that image (d's repository at the Subject digest),
// after checking that the index d lists it; an index that does not, or a d that
// is not an index, is an error naming both. So a caller attests each platform's
// SBOM and vulnerability report with the index's digest alone, and a [Verifier]
// finds them on the platform images the index lists.
func (s *Signer) Attest(ctx context.Context, d name.Digest, p sign.Predicate, opts ...sign.AttestOption) error {
	var o sign.AttestOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := sign.CheckDigest(d); err != nil {
		return fmt.Errorf("attest: %w", err)
	}
	target := d
	if p.Subject != (v1.Hash{}) && p.Subject.String() != d.DigestStr() {
		target = d.Context().Digest(p.Subject.String())
	}
	st := s.opts.start("attest " + p.Type + " " + target.String())
	if target != d {
		if err := s.checkListed(ctx, d, p.Subject); err != nil {
			return st.Fail(fmt.Errorf("attest %s: %w", target, err))
		}
	}
	if err := s.attest(ctx, target, p, o); err != nil {
		return st.Fail(fmt.Errorf("attest %s: %w", target, err))
	}
	st.Finish("attested " + p.Type + " signed by " + s.key.String())
	s.opts.log.DebugContext(ctx, "attested image", "digest", target.String(), "predicateType", p.Type, "key", s.key.String())
	return nil
}

// ErrNotInIndex is matched (errors.Is) by the error of [Signer.Attest] for a
// predicate whose Subject the index it is attested through does not list.
var ErrNotInIndex = errors.New("subject not listed by the image index")

// checkListed checks that the image index idx lists the image sub.
func (s *Signer) checkListed(ctx context.Context, idx name.Digest, sub v1.Hash) error {
	desc, err := remote.Get(idx, s.opts.remoteOptions(ctx)...)
	if err != nil {
		return fmt.Errorf("read the image index %s: %w", idx, err)
	}
	if !desc.MediaType.IsIndex() {
		return fmt.Errorf("predicate subject %s: %s is not an image index (%s), so it lists no platform image: %w", sub, idx, desc.MediaType, ErrNotInIndex)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return fmt.Errorf("read the image index %s: %w", idx, err)
	}
	for _, m := range im.Manifests {
		if m.Digest == sub {
			return nil
		}
	}
	return fmt.Errorf("the image index %s does not list the predicate's subject %s: %w", idx, sub, ErrNotInIndex)
}

func (s *Signer) attest(ctx context.Context, d name.Digest, p sign.Predicate, o sign.AttestOptions) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := s.key.checkCertificate(time.Now()); err != nil {
		return err
	}
	if s.bundleFormat() {
		return s.attestBundle(ctx, d, p, o)
	}
	alg, hex, _ := strings.Cut(d.DigestStr(), ":")
	st, err := json.Marshal(statement{
		Type:          statementV01,
		PredicateType: p.Type,
		Subject:       []subject{{Name: d.Context().Name(), Digest: map[string]string{alg: hex}}},
		Predicate:     p.Body,
	})
	if err != nil {
		return fmt.Errorf("encode statement: %w", err)
	}
	envelope, err := dsse.WrapSigner(s.key.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(st), sigopts.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("sign statement with %s: %w", s.key, err)
	}
	att, err := static.NewAttestation(envelope, append([]static.Option{
		static.WithLayerMediaType(types.DssePayloadType),
		static.WithAnnotations(map[string]string{"predicateType": p.Type}),
	}, s.key.staticOptions()...)...)
	if err != nil {
		return err
	}
	se, err := signedEntity(ctx, d, &s.opts)
	if err != nil {
		return err
	}
	mopts := []mutate.SignOption{mutate.WithDupeDetector(cremote.NewDupeDetector(s.key.sv))}
	if o.Replace {
		mopts = append(mopts, mutate.WithReplaceOp(replaceOp{predicateType: p.Type}))
	}
	se, err = mutate.AttachAttestationToEntity(se, att, mopts...)
	if err != nil {
		return fmt.Errorf("attach attestation: %w", err)
	}
	if err := ociremote.WriteAttestations(d.Repository, se, s.opts.ociOptions(ctx)...); err != nil {
		return fmt.Errorf("push attestation: %w", err)
	}
	return nil
}

// signedEntity fetches the image or index d with its signatures and attestations.
func signedEntity(ctx context.Context, d name.Digest, o *options) (oci.SignedEntity, error) {
	se, err := ociremote.SignedEntity(d, o.ociOptions(ctx)...)
	var nf *ociremote.EntityNotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("image not found in the registry (push it before signing): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch image: %w", err)
	}
	return se, nil
}

// replaceOp drops the attestations of one predicate type before the new one is
// added. cosign's own (remote.NewReplaceOp) prints to os.Stderr and fails on an
// attestation it cannot read; this one is quiet and keeps what it cannot read.
type replaceOp struct{ predicateType string }

func (r replaceOp) Replace(atts oci.Signatures, add oci.Signature) (oci.Signatures, error) {
	list, err := atts.Get()
	if err != nil {
		return nil, err
	}
	keep := []oci.Signature{add}
	for _, a := range list {
		if predicateTypeOf(a) != r.predicateType {
			keep = append(keep, a)
		}
	}
	return &replaced{Signatures: atts, list: keep}, nil
}

type replaced struct {
	oci.Signatures
	list []oci.Signature
}

func (r *replaced) Get() ([]oci.Signature, error) { return r.list, nil }

// predicateTypeOf returns the predicate type of the in-toto statement in an
// attestation's DSSE envelope, "" when it cannot be read.
func predicateTypeOf(att oci.Signature) string {
	payload, err := att.Payload()
	if err != nil {
		return ""
	}
	var env struct {
		Payload []byte `json:"payload"` // base64, decoded by encoding/json
	}
	if json.Unmarshal(payload, &env) != nil {
		return ""
	}
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	if json.Unmarshal(env.Payload, &st) != nil {
		return ""
	}
	return st.PredicateType
}
