package cosign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	cosigntypes "github.com/sigstore/cosign/v2/pkg/types"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/shipkit/shipkit/sign"
)

// bundleFound is what judging one bundle found: its kind (a signature, an
// attestation) and what the layer path's judgement finds for that kind. skip is
// set for a signature found on a platform image, whose signatures are not read.
type bundleFound struct {
	kind kind
	found
	skip bool
}

// supportedBundleTypes are the layer media types of the bundle versions read:
// v0.1 to v0.3, as sigstore-go reads them.
var supportedBundleTypes = map[string]bool{
	"application/vnd.dev.sigstore.bundle+json;version=0.1": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.2": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.3": true,
	bundleMediaType: true,
}

// judgeBundle verifies one sigstore bundle read from a referrer of the image h
// and classifies it: a DSSE envelope of an in-toto statement of type
// https://sigstore.dev/cosign/sign/v1 (what cosign v3 sign writes) or a message
// signature over the image's digest is a signature; any other statement is an
// attestation. wantSig is false for a platform image, whose signatures are
// skipped. A bundle made with a key is verified under the trusted keys (see
// bundleAuthorities), one made with a certificate under the trusted root and
// identities (keylessCheck).
func (v *Verifier) judgeBundle(ctx context.Context, payload []byte, r *bundleRef, h v1.Hash, wantSig bool) (out bundleFound) {
	out.kind = kindAttestation
	if r.predicateType == cosignSignPredicateType {
		out.kind = kindSignature
	}
	fail := func(code sign.ReasonCode, msg string) bundleFound {
		out.prob = &problem{code: code, msg: msg}
		out.skip = out.kind == kindSignature && !wantSig
		return out
	}
	defer func() {
		// sigstore-go parses log entries of many kinds; whatever it cannot is a
		// malformed bundle, never a crash of the verifier.
		if p := recover(); p != nil {
			out = fail(sign.ReasonMalformed, "sigstore bundle cannot be read")
		}
	}()
	if mt := string(r.layer.MediaType); !supportedBundleTypes[mt] {
		return fail(sign.ReasonMalformed, "sigstore bundle of an unsupported media type version ("+safeType(mt)+"); v0.1 to v0.3 are read")
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(payload); err != nil {
		v.opts.log.DebugContext(ctx, "bundle cannot be parsed", "digest", r.layer.Digest.String(), "error", truncate(err.Error(), 512))
		if errors.Is(err, bundle.ErrUnsupportedMediaType) {
			return fail(sign.ReasonMalformed, "sigstore bundle of an unsupported version (its mediaType); v0.1 to v0.3 are read")
		}
		return fail(sign.ReasonMalformed, "not a valid sigstore bundle (cut off, or not the bundle format)")
	}
	if bundleVersionOf(b.GetMediaType()) != bundleVersionOf(string(r.layer.MediaType)) {
		return fail(sign.ReasonMalformed, "sigstore bundle's mediaType is not its layer's")
	}

	// What the bundle is about, read before its signature verifies.
	var (
		digest    []byte // a message signature's message digest
		statement struct {
			PredicateType string `json:"predicateType"`
			Subject       []struct {
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
			Predicate json.RawMessage `json:"predicate"`
		}
		envelopePayload []byte
		sig             []byte
	)
	switch c := b.GetContent().(type) {
	case *protobundle.Bundle_DsseEnvelope:
		env := c.DsseEnvelope
		if env.GetPayloadType() != cosigntypes.IntotoPayloadType {
			return fail(sign.ReasonMalformed, "DSSE payload type is not "+cosigntypes.IntotoPayloadType)
		}
		if err := json.Unmarshal(env.GetPayload(), &statement); err != nil {
			return fail(sign.ReasonMalformed, "payload is not an in-toto statement: "+jsonErrorText(err))
		}
		switch n := len(env.GetSignatures()); {
		case n == 0:
			return fail(sign.ReasonMalformed, "DSSE envelope has no signature")
		case n > maxEnvelopeSignatures:
			return fail(sign.ReasonMalformed, fmt.Sprintf("DSSE envelope has %d signatures, more than the %d a verifier tries", n, maxEnvelopeSignatures))
		}
		out.kind = kindAttestation
		if statement.PredicateType == cosignSignPredicateType {
			out.kind = kindSignature
		}
		envelopePayload, sig = env.GetPayload(), env.GetSignatures()[0].GetSig()
	case *protobundle.Bundle_MessageSignature:
		out.kind = kindSignature
		md := c.MessageSignature.GetMessageDigest()
		if md.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 || len(md.GetDigest()) != sha256.Size {
			return fail(sign.ReasonMalformed, "message signature's digest is not a SHA-256 digest")
		}
		digest, sig = md.GetDigest(), c.MessageSignature.GetSignature()
	}
	if out.kind == kindSignature && !wantSig {
		out.skip = true
		return out
	}
	what := "signature"
	prefix := ""
	untrusted := sign.ReasonUntrustedSignature
	if out.kind == kindAttestation {
		what = "attestation of " + safeType(statement.PredicateType)
		prefix = what + ": "
		untrusted = sign.ReasonUntrustedAttestation
	}
	hb, err := hashBytes(h)
	if err != nil {
		return fail(sign.ReasonMalformed, "the image's digest is not SHA-256")
	}
	about := verify.WithArtifactDigest("sha256", hb)

	vc, err := b.VerificationContent()
	if err != nil {
		return fail(sign.ReasonMalformed, prefix+"bundle's verification material cannot be read")
	}
	var who *signer
	var p *problem
	if vc.Certificate() != nil {
		who, p = keylessCheck(v.opts.trustedRoot, &b, about, v.identities, prefix, untrusted)
	} else {
		who, p = v.keyBundleCheck(&b, h, hb, digest, statement.Subject, what, prefix, untrusted)
	}
	if p != nil {
		out.prob = p
		return out
	}
	if p := checkLogEntries(&b, sig, envelopePayload, digest, prefix); p != nil {
		out.prob = p
		return out
	}
	if out.kind == kindSignature {
		out.signer = who
		return out
	}
	out.att = &sign.Attestation{PredicateType: statement.PredicateType, Predicate: statement.Predicate, Signer: who.name}
	return out
}

// keyBundleCheck verifies a bundle made with a key under each trusted key: its
// signature (sigstore-go), then that it is about the image h (a statement's
// subject, or a message signature's digest).
func (v *Verifier) keyBundleCheck(b *bundle.Bundle, h v1.Hash, hb, digest []byte, subjects []struct {
	Digest map[string]string `json:"digest"`
}, what, prefix string, untrusted sign.ReasonCode) (*signer, *problem) {
	if len(v.bundleAuth) == 0 {
		return nil, &problem{code: untrusted, msg: prefix + "made with a key and no certificate; the policy trusts certificate identities only"}
	}
	for i := range v.bundleAuth {
		a := &v.bundleAuth[i]
		if a.certificate {
			continue
		}
		var artifact verify.ArtifactPolicyOption
		if digest != nil {
			artifact = verify.WithArtifactDigest("sha256", digest) // the signed digest; compared with h below
		} else {
			artifact = verify.WithoutArtifactUnsafe() // the statement's subject is compared with h below
		}
		if _, err := a.verifier.Verify(b, verify.NewPolicy(artifact, a.policy...)); err != nil {
			continue
		}
		about := false
		if digest != nil {
			about = bytes.Equal(digest, hb)
		}
		for _, s := range subjects {
			if s.Digest["sha256"] == h.Hex {
				about = true
			}
		}
		if !about {
			if prefix == "" {
				return nil, &problem{code: sign.ReasonWrongSubject, msg: fmt.Sprintf("signed by trusted key %s for another image (copied from another digest?)", a.signer.name)}
			}
			return nil, &problem{code: sign.ReasonWrongSubject, msg: fmt.Sprintf("%s signed by trusted key %s is about another image (copied from another digest?)", what, a.signer.name)}
		}
		return &a.signer, nil
	}
	if prefix == "" {
		return nil, &problem{code: untrusted, msg: "not signed by a trusted key (signed by another key, or altered after signing)"}
	}
	return nil, &problem{code: untrusted, msg: what + " is not signed by a trusted key (signed by another key, or altered after signing)"}
}

// checkLogEntries checks that the transparency log entries a bundle carries are
// this bundle's: the signature they log is the bundle's, and so is the payload
// or digest where the entry records one. A key-based bundle is verified without
// a log (as cosign v3 verifies a key offline), so the entries' proofs are not
// checked, but an entry for another artifact is a tampered bundle.
func checkLogEntries(b *bundle.Bundle, sig, envelopePayload, digest []byte, prefix string) *problem {
	entries, err := b.TlogEntries()
	if err != nil {
		return &problem{code: sign.ReasonMalformed, msg: prefix + "bundle's transparency log entries cannot be read"}
	}
	other := &problem{code: sign.ReasonMalformed, msg: prefix + "bundle carries a transparency log entry for another artifact (its signature or digest is not this bundle's)"}
	for _, e := range entries {
		if s := e.Signature(); len(s) > 0 && !bytes.Equal(s, sig) {
			return other
		}
		if h, ok := e.GetDssePayloadHash(); ok && envelopePayload != nil {
			sum := sha256.Sum256(envelopePayload)
			if !bytes.Equal(h, sum[:]) {
				return other
			}
		}
		if h, _, ok := e.GetHashedRekordDigest(); ok && digest != nil && !bytes.Equal(h, digest) {
			return other
		}
	}
	return nil
}

// hashBytes returns the bytes of a sha256 digest.
func hashBytes(h v1.Hash) ([]byte, error) {
	b, err := hex.DecodeString(h.Hex)
	if err != nil || h.Algorithm != "sha256" || len(b) != sha256.Size {
		return nil, errors.New("not a sha256 digest")
	}
	return b, nil
}

// bundleVersionOf returns the version of a sigstore bundle media type ("0.3"),
// "" when it is not one.
func bundleVersionOf(mt string) string {
	for _, v := range []string{"0.1", "0.2", "0.3"} {
		if mt == bundleMediaTypePrefix+"+json;version="+v || mt == bundleMediaTypePrefix+".v"+v+"+json" {
			return v
		}
	}
	return ""
}
