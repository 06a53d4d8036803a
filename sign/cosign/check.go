package cosign

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	cosignlib "github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/shipkit/shipkit/sign"
)

// layerSignature makes the cosign signature of a layer read from a cosign tag: its
// payload, and its signature, certificate and chain from its descriptor's
// annotations (as cosign's remote signatures read them).
func layerSignature(payload []byte, desc v1.Descriptor) (oci.Signature, error) {
	ann := maps.Clone(desc.Annotations)
	opts := []static.Option{static.WithLayerMediaType(desc.MediaType), static.WithAnnotations(ann)}
	if c := ann[static.CertificateAnnotationKey]; c != "" {
		opts = append(opts, static.WithCertChain([]byte(c), []byte(ann[static.ChainAnnotationKey])))
	}
	return static.NewSignature(payload, ann[static.SignatureAnnotationKey], opts...)
}

// checkSignature verifies one signature layer with every trusted signer; it
// returns the signer that verified it, or the problem.
func (v *Verifier) checkSignature(ctx context.Context, payload []byte, desc v1.Descriptor, h v1.Hash, memo *certMemo) (*signer, *problem) {
	var simple struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	if err := json.Unmarshal(payload, &simple); err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "payload is not a cosign signature payload: " + jsonErrorText(err)}
	}
	b64 := desc.Annotations[static.SignatureAnnotationKey]
	if _, err := base64.StdEncoding.DecodeString(b64); err != nil || b64 == "" {
		return nil, &problem{code: sign.ReasonMalformed, msg: "signature value is not base64"}
	}
	sig, err := layerSignature(payload, desc)
	if err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "cannot be read"}
	}
	return v.trust(ctx, sig, h, trustCheck{memo: memo,
		verify: cosignlib.VerifyImageSignature, claims: cosignlib.SimpleClaimVerifier,
		untrusted: sign.ReasonUntrustedSignature,
		wrongSubject: func(signer string) string {
			return fmt.Sprintf("signed by trusted %s for %s, not this image (copied from another digest?)", signer, safeDigest(simple.Critical.Image.Digest))
		},
		notTrusted: "not signed by a trusted key (signed by another key, or altered after signing)",
	})
}

// dsseEnvelope is the part of a DSSE envelope read before its signature is
// verified; Payload is decoded from base64 by encoding/json.
type dsseEnvelope struct {
	PayloadType string `json:"payloadType"`
	Payload     []byte `json:"payload"`
	Signatures  []struct {
		Sig string `json:"sig"`
	} `json:"signatures"`
}

// maxEnvelopeSignatures bounds the signatures of a DSSE envelope a verifier tries
// (each costs a signature verification per trusted key). An envelope has one per
// signer; cosign writes one.
const maxEnvelopeSignatures = 16

// signedBy reports whether one of the envelope's signatures verifies with sv over
// the DSSE pre-authentication encoding of its payload. The encoding is streamed
// to the verifier, not built: for a large payload that no trusted key signed
// (what a hostile registry serves), cosign's own check, which decodes the envelope
// again and builds the encoding, never runs. It runs on what this accepts.
func (e *dsseEnvelope) signedBy(ctx context.Context, sv signature.Verifier) bool {
	header := fmt.Sprintf("DSSEv1 %d %s %d ", len(e.PayloadType), e.PayloadType, len(e.Payload))
	for _, s := range e.Signatures {
		raw, err := base64.StdEncoding.DecodeString(s.Sig)
		if err != nil { // as the DSSE library decodes it
			raw, err = base64.URLEncoding.DecodeString(s.Sig)
		}
		if err != nil {
			continue
		}
		msg := io.MultiReader(strings.NewReader(header), bytes.NewReader(e.Payload))
		if sv.VerifySignature(bytes.NewReader(raw), msg, sigopts.WithContext(ctx)) == nil {
			return true
		}
	}
	return false
}

// checkAttestation verifies one attestation layer with every trusted signer; it
// returns the verified statement, or the problem. Only the predicate type is read
// before the signature verifies; the predicate is copied out only after.
func (v *Verifier) checkAttestation(ctx context.Context, payload []byte, desc v1.Descriptor, h v1.Hash, memo *certMemo) (*sign.Attestation, *problem) {
	var env dsseEnvelope
	if err := json.Unmarshal(payload, &env); err != nil {
		var b64 base64.CorruptInputError
		if errors.As(err, &b64) {
			return nil, &problem{code: sign.ReasonMalformed, msg: "DSSE payload is not base64"}
		}
		return nil, &problem{code: sign.ReasonMalformed, msg: "not a DSSE envelope: " + jsonErrorText(err)}
	}
	if env.PayloadType != types.IntotoPayloadType {
		return nil, &problem{code: sign.ReasonMalformed, msg: "DSSE payload type is not " + types.IntotoPayloadType}
	}
	var head struct {
		PredicateType string `json:"predicateType"`
	}
	if err := json.Unmarshal(env.Payload, &head); err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "payload is not an in-toto statement: " + jsonErrorText(err)}
	}
	pt := safeType(head.PredicateType)
	switch n := len(env.Signatures); {
	case n == 0:
		return nil, &problem{code: sign.ReasonMalformed, msg: "attestation of " + pt + ": DSSE envelope has no signature"}
	case n > maxEnvelopeSignatures:
		return nil, &problem{code: sign.ReasonMalformed, msg: fmt.Sprintf(
			"attestation of %s: DSSE envelope has %d signatures, more than the %d a verifier tries", pt, n, maxEnvelopeSignatures)}
	}
	att, err := layerSignature(payload, desc)
	if err != nil {
		return nil, &problem{code: sign.ReasonMalformed, msg: "attestation of " + pt + ": cannot be read"}
	}
	who, p := v.trust(ctx, att, h, trustCheck{memo: memo,
		verify: cosignlib.VerifyBlobAttestation, claims: intotoSubjectClaims,
		precheck:  func(sv signature.Verifier) bool { return env.signedBy(ctx, sv) },
		untrusted: sign.ReasonUntrustedAttestation, prefix: "attestation of " + pt + ": ",
		wrongSubject: func(signer string) string {
			return fmt.Sprintf("attestation of %s signed by trusted %s is about another image (copied from another digest?)", pt, signer)
		},
		notTrusted: fmt.Sprintf("attestation of %s is not signed by a trusted key (signed by another key, or altered after signing)", pt),
	})
	if p != nil {
		return nil, p
	}
	var st struct {
		Predicate json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(env.Payload, &st); err != nil { // it decoded above
		return nil, &problem{code: sign.ReasonMalformed, msg: "attestation of " + pt + ": payload is not an in-toto statement"}
	}
	return &sign.Attestation{PredicateType: head.PredicateType, Predicate: st.Predicate, Signer: who.name}, nil
}

// intotoSubjectClaims is cosign.IntotoSubjectClaimVerifier without decoding the
// predicate (cosign's decodes it into a map, many times the size of a large SBOM):
// the statement of a verified envelope must name the image's sha256 digest as a
// subject.
func intotoSubjectClaims(sig oci.Signature, h v1.Hash, _ map[string]any) error {
	payload, err := sig.Payload()
	if err != nil {
		return err
	}
	var env struct {
		Payload []byte `json:"payload"`
	}
	if err := json.Unmarshal(payload, &env); err != nil {
		return err
	}
	var st struct {
		Subject []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(env.Payload, &st); err != nil {
		return err
	}
	for _, s := range st.Subject {
		if hex, ok := s.Digest["sha256"]; ok && "sha256:"+hex == h.String() {
			return nil
		}
	}
	return errors.New("no matching subject digest found")
}
