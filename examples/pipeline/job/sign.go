package job

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// signing is the key the job signs with and the keys it trusts.
type signing struct {
	signer  *cosign.Signer
	trusted []sign.TrustedKey
	key     string // how the key is named in summaries, never its material
}

// builderID names this program as the SLSA builder.
const builderID = "https://github.com/shipkit/shipkit/examples/pipeline"

// sign signs the index and each platform image, attests each platform's SBOM
// (SPDX) and vulnerability report to that platform's image (the predicates name it;
// the signer is given the index's digest alone), and SLSA provenance to the index.
func (j *Job) sign(ctx context.Context) (string, error) {
	if err := j.need("vulnerability report", len(j.Reports) > 0 && len(j.Reports) == len(j.SBOMs)); err != nil {
		return "", err
	}
	if j.keys == nil {
		j.keys = goBackground(j.readKeys)
	}
	s, err := j.keys.wait(ctx)
	if err != nil {
		return "", err
	}
	j.signing = s
	if err := s.signer.Sign(ctx, j.Digest, sign.WithRecursive()); err != nil {
		return "", err
	}
	preds, err := j.predicates()
	if err != nil {
		return "", err
	}
	j.Attested = nil
	for _, p := range preds {
		if err := s.signer.Attest(ctx, j.Digest, p); err != nil {
			return "", err
		}
		j.Attested = append(j.Attested, p.Type)
	}
	return fmt.Sprintf("signed with %s; %d attestations (%d platforms: SBOM and vulnerabilities each; SLSA provenance)",
		s.key, len(preds), len(j.SBOMs)), nil
}

// readKeys loads KeyFile (decrypting it is a deliberately slow scrypt), or
// generates a throwaway key in memory, and reads the keys to trust.
func (j *Job) readKeys() (*signing, error) {
	ctx := context.Background()
	var key *cosign.PrivateKey
	s := &signing{}
	if j.cfg.KeyFile != "" {
		k, err := cosign.LoadPrivateKeyFile(j.cfg.KeyFile, j.cfg.KeyPassword)
		if err != nil {
			return nil, err
		}
		key, s.key = k, "key "+j.cfg.KeyFile
	} else {
		// A throwaway key never leaves memory, so it needs no password (and no scrypt).
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generating a key: %w", err)
		}
		sv, err := signature.LoadECDSASignerVerifier(ec, crypto.SHA256)
		if err != nil {
			return nil, err
		}
		if key, err = cosign.NewPrivateKey(ctx, sv); err != nil {
			return nil, err
		}
		s.key = "a throwaway key (" + key.String() + ")"
	}
	signer, err := cosign.NewSigner(key, cosign.WithLogger(j.log), cosign.WithObserver(j.obs))
	if err != nil {
		return nil, err
	}
	s.signer = signer
	for _, path := range j.cfg.TrustedKeys {
		tk, err := cosign.LoadTrustedKeyFile(path, path)
		if err != nil {
			return nil, err
		}
		s.trusted = append(s.trusted, tk)
	}
	if len(s.trusted) == 0 {
		s.trusted = []sign.TrustedKey{key.TrustedKey("pipeline")}
	}
	return s, nil
}

// predicates returns what the sign stage attests: each platform's SPDX SBOM and
// vulnerability report, about that platform's image (their Subject), and SLSA
// provenance about the index.
func (j *Job) predicates() ([]sign.Predicate, error) {
	var out []sign.Predicate
	for i, s := range j.SBOMs {
		doc, err := sbom.Predicate(s, sbom.SPDXJSON)
		if err != nil {
			return nil, err
		}
		vulns, err := sign.VulnPredicate(j.Reports[i])
		if err != nil {
			return nil, fmt.Errorf("vulnerability report of %s: %w", s.Subject, err)
		}
		out = append(out, doc, vulns)
	}
	prov, err := j.provenance().Predicate()
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	return append(out, prov), nil
}

func (j *Job) provenance() sign.Provenance {
	p := sign.ProvenanceFromAnnotations(j.annotations())
	p.BuilderID = builderID
	if p.SourceRepository == "" {
		p.SourceRepository = j.cfg.SourceRepository
	}
	if p.SourceRevision == "" {
		p.SourceRevision = j.cfg.SourceRevision
	}
	if p.SourceRevision == "" {
		p.SourceRevision = "unknown"
	}
	p.Parameters = map[string]any{"source": j.cfg.Source, "platforms": j.cfg.Platforms}
	now := time.Now()
	p.StartedOn, p.FinishedOn = now, now
	return p
}

func (j *Job) annotations() map[string]string {
	m, err := j.Index.IndexManifest()
	if err != nil || m == nil {
		return nil
	}
	return m.Annotations
}

// verify checks the signatures and attestations of the index against the policy: a
// trusted key signed it, and attested an SBOM, a vulnerability report and
// provenance from the source repository.
func (j *Job) verify(ctx context.Context) (string, error) {
	if err := j.need("signature", j.signing != nil); err != nil {
		return "", err
	}
	v, err := j.verifier()
	if err != nil {
		return "", err
	}
	verified, err := v.Verify(ctx, j.Digest)
	if err != nil {
		return "", err // a denial is a *sign.DeniedError: errors.Is(err, sign.ErrDenied)
	}
	j.Verified = verified
	n := len(verified.Attestations)
	for _, p := range verified.Platforms {
		n += len(p.Attestations)
	}
	return fmt.Sprintf("signed by %s; %d attestations verified (%d on the index, the others on %d platform image(s))",
		strings.Join(verified.Signers, ", "), n, len(verified.Attestations), len(verified.Platforms)), nil
}

// verifier returns a verifier of the job's policy. The gate uses the same one; its
// cache spares the gate a second round of registry requests for the same digest.
func (j *Job) verifier() (*cosign.Verifier, error) {
	s := j.signing
	return cosign.NewVerifier(sign.Policy{
		TrustedKeys:        s.trusted,
		RequiredPredicates: []string{sign.PredicateSLSAProvenance, sign.PredicateVuln},
		Conditions: []sign.Condition{
			sign.SBOMExists(),
			sign.ProvenanceFrom(j.cfg.SourceRepository),
		},
	}, cosign.WithLogger(j.log), cosign.WithObserver(j.obs), cosign.WithCache(j.cache()))
}
