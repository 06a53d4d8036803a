package sign

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Policy says which signatures and attestations an image needs.
//
// An image passes when at least Threshold distinct trusted signers (keys and
// identities) signed it, every required predicate type is attested by a trusted
// signer, and every condition holds on the trusted attestations. Signatures and
// attestations by others are ignored unless they are why the image fails (then they
// are named in the reasons).
//
// A signature that carries a certificate is judged by the trusted identities, one
// without by the trusted keys.
type Policy struct {
	// TrustedKeys are the public keys whose signatures count.
	TrustedKeys []TrustedKey
	// TrustedIdentities are the certificate identities whose signatures count. A
	// policy needs at least one trusted key or identity.
	TrustedIdentities []TrustedIdentity
	// Threshold is how many distinct trusted signers must have signed the image; 0
	// means 1 (any one of them).
	Threshold int
	// RequiredPredicates are predicate types (e.g. [PredicateSLSAProvenance]) that a
	// trusted signer must have attested.
	RequiredPredicates []string
	// Conditions must hold on the trusted attestations.
	Conditions []Condition
}

// TrustedKey is a public key a policy trusts.
type TrustedKey struct {
	// Name identifies the key in [Verified.Signers] and in reasons; empty means its
	// fingerprint ("sha256:" and the first 16 hex digits of the key's DER hash).
	Name string
	// PEM is the PEM-encoded public key (PKIX), as cosign.pub holds it.
	PEM []byte
}

// ErrNotPublicKey is wrapped by the error for a [TrustedKey] whose PEM is not a
// PEM-encoded PKIX public key ("-----BEGIN PUBLIC KEY-----", as cosign.pub holds
// it): text that is no PEM at all, a private key, a certificate, or a block whose
// contents do not parse. The error says which, in its own words: it never quotes
// the key's bytes (a private key given by mistake stays out of logs).
var ErrNotPublicKey = errors.New("not a PEM public key")

// Fingerprint returns the SHA-256 of the key's DER encoding, hex encoded. A PEM
// that is not a public key is an error wrapping [ErrNotPublicKey].
func (k TrustedKey) Fingerprint() (string, error) {
	block, _ := pem.Decode(k.PEM)
	if block == nil {
		return "", fmt.Errorf("%w: no PEM block (want -----BEGIN PUBLIC KEY-----, as in cosign.pub)", ErrNotPublicKey)
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		return "", fmt.Errorf("%w: %s", ErrNotPublicKey, notPublicKey(block.Type, err))
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:]), nil
}

// notPublicKey says why a PEM block of type typ is not a PKIX public key; err is
// x509's, whose ASN.1 structure dumps say nothing to a person and are left out.
func notPublicKey(typ string, err error) string {
	if len(typ) > 40 {
		typ = typ[:40] + "…"
	}
	switch {
	case strings.Contains(typ, "PRIVATE KEY"):
		return fmt.Sprintf("a private key (PEM block %q): trust its public key (cosign.pub, or cosign public-key --key)", typ)
	case typ == "CERTIFICATE":
		return "a certificate (PEM block \"CERTIFICATE\"): give its public key, or trust the signer's identity (TrustedIdentity)"
	}
	var syntax asn1.SyntaxError
	var structure asn1.StructuralError
	if errors.As(err, &syntax) || errors.As(err, &structure) {
		return fmt.Sprintf("the PEM block %q does not hold a PKIX public key (cut off or damaged?)", typ)
	}
	return fmt.Sprintf("PEM block %q: %v", typ, err)
}

// DisplayName returns Name, or a name made from the fingerprint when Name is empty.
func (k TrustedKey) DisplayName() string {
	if k.Name != "" {
		return k.Name
	}
	fp, err := k.Fingerprint()
	if err != nil {
		return "invalid key"
	}
	return "sha256:" + fp[:16]
}

// Condition is a check on the trusted attestations of an image. A condition that
// also has a Validate() error method is validated with the policy.
type Condition interface {
	// String describes the condition. Two conditions that describe themselves alike
	// must check alike: the description is part of the policy's cache key.
	String() string
	// Check returns why the attestations fail the condition, nothing when they pass.
	// A reason without a code is [ReasonCondition].
	Check(atts []Attestation) []Reason
}

// Key returns a string that identifies what the policy checks, for cache keys: equal
// policies have equal keys, whatever the order of their keys, identities, predicate
// types and conditions. It fails when the policy does not validate.
func (p *Policy) Key() (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	var parts struct {
		Keys       []string `json:"keys"`
		Identities []string `json:"identities,omitempty"`
		Threshold  int      `json:"threshold"`
		Predicates []string `json:"predicates"`
		Conditions []string `json:"conditions"`
	}
	for _, k := range p.TrustedKeys {
		fp, _ := k.Fingerprint() // Validate parsed it
		parts.Keys = append(parts.Keys, fp+" "+k.DisplayName())
	}
	for _, id := range p.TrustedIdentities {
		fp, _ := id.Fingerprint() // Validate checked it
		parts.Identities = append(parts.Identities, fp+" "+id.DisplayName())
	}
	parts.Threshold = p.threshold()
	parts.Predicates = slices.Clone(p.RequiredPredicates)
	for _, c := range p.Conditions {
		parts.Conditions = append(parts.Conditions, c.String())
	}
	slices.Sort(parts.Keys)
	slices.Sort(parts.Identities)
	slices.Sort(parts.Predicates)
	slices.Sort(parts.Conditions)
	b, err := json.Marshal(parts)
	if err != nil {
		return "", fmt.Errorf("policy key: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Validate checks that the policy has trusted keys that parse or identities that
// validate, and a threshold they can meet.
func (p *Policy) Validate() error {
	if len(p.TrustedKeys) == 0 && len(p.TrustedIdentities) == 0 {
		return errors.New("policy: no trusted keys or identities")
	}
	seen := map[string]bool{}
	for i, k := range p.TrustedKeys {
		fp, err := k.Fingerprint()
		if err != nil {
			if k.Name != "" {
				return fmt.Errorf("policy: trusted key %d (%s): %w", i, k.Name, err)
			}
			return fmt.Errorf("policy: trusted key %d: %w", i, err)
		}
		seen["key "+fp] = true
	}
	for i, id := range p.TrustedIdentities {
		fp, err := id.Fingerprint()
		if err != nil {
			return fmt.Errorf("policy: trusted identity %d: %w", i, err)
		}
		seen["identity "+fp] = true
	}
	if p.Threshold < 0 || p.threshold() > len(seen) {
		return fmt.Errorf("policy: threshold %d cannot be met by %d distinct trusted signers", p.Threshold, len(seen))
	}
	for i, c := range p.Conditions {
		if c == nil {
			return fmt.Errorf("policy: condition %d is nil", i)
		}
		if v, ok := c.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("policy: condition %d: %w", i, err)
			}
		}
	}
	return nil
}

func (p *Policy) threshold() int {
	if p.Threshold == 0 {
		return 1
	}
	return p.Threshold
}

// EffectiveThreshold returns how many distinct trusted signers must sign:
// p.Threshold, or 1 when it is 0.
func (p *Policy) EffectiveThreshold() int { return p.threshold() }

// SBOMExists requires a trusted SBOM attestation, SPDX or CycloneDX.
func SBOMExists() Condition { return sbomExists{} }

type sbomExists struct{}

func (sbomExists) String() string { return "an SBOM (SPDX or CycloneDX) is attested" }

func (sbomExists) Check(atts []Attestation) []Reason {
	for _, a := range atts {
		if a.PredicateType == PredicateSPDX || a.PredicateType == PredicateCycloneDX {
			return nil
		}
	}
	return []Reason{{Code: ReasonMissingAttestation,
		Message: "no SBOM attestation (" + PredicateSPDX + " or " + PredicateCycloneDX + ") by a trusted signer"}}
}

// ProvenanceFrom requires SLSA provenance v1 by a trusted signer, every one of which
// names repo as the source: buildDefinition.externalParameters.source.repository as
// [Provenance] writes it, or externalParameters.workflow.repository as GitHub's SLSA
// generator does. Repository URIs compare without a "git+" prefix, a ".git" suffix
// and a trailing slash.
func ProvenanceFrom(repo string) Condition { return provenanceFrom{repo: repo} }

type provenanceFrom struct{ repo string }

func (c provenanceFrom) String() string { return "SLSA provenance names source " + c.repo }

func (c provenanceFrom) Check(atts []Attestation) []Reason {
	want := normalizeRepo(c.repo)
	var reasons []Reason
	found := false
	for _, a := range atts {
		if a.PredicateType != PredicateSLSAProvenance {
			continue
		}
		found = true
		var pred struct {
			BuildDefinition struct {
				ExternalParameters struct {
					Source   struct{ Repository string } `json:"source"`
					Workflow struct{ Repository string } `json:"workflow"`
				} `json:"externalParameters"`
			} `json:"buildDefinition"`
		}
		if err := json.Unmarshal(a.Predicate, &pred); err != nil {
			reasons = append(reasons, Reason{Code: ReasonCondition,
				Message: fmt.Sprintf("SLSA provenance signed by %s cannot be read: %v", a.Signer, err)})
			continue
		}
		ext := pred.BuildDefinition.ExternalParameters
		got := ext.Source.Repository
		if got == "" {
			got = ext.Workflow.Repository
		}
		if normalizeRepo(got) != want {
			if got == "" {
				got = "no repository"
			}
			reasons = append(reasons, Reason{Code: ReasonCondition,
				Message: fmt.Sprintf("SLSA provenance signed by %s names source %s, want %s", a.Signer, got, c.repo)})
		}
	}
	if !found {
		return []Reason{{Code: ReasonMissingAttestation,
			Message: "no SLSA provenance (" + PredicateSLSAProvenance + ") by a trusted signer to check the source repository"}}
	}
	return reasons
}

func normalizeRepo(s string) string {
	s = strings.TrimPrefix(strings.TrimSpace(s), "git+")
	s = strings.TrimSuffix(s, "/")
	return strings.TrimSuffix(s, ".git")
}
