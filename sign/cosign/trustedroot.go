package cosign

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/sign"
)

// MaxTrustedRootSize bounds a trusted_root.json ([LoadTrustedRoot],
// [ParseTrustedRoot]): sigstore's public one is about 15 KiB.
const MaxTrustedRootSize = 4 << 20

// ErrTrustedRoot is wrapped by the error for a trusted root that cannot be read or
// parsed, or that lacks what its thresholds need (a certificate authority, a
// transparency log, a timestamp authority).
var ErrTrustedRoot = errors.New("sigstore trusted root")

// TrustedRoot is a sigstore trusted root, the trusted_root.json that sigstore's TUF
// repository distributes (or one for a private sigstore): the Fulcio certificate
// authorities, Rekor logs, timestamp authorities and CT logs that keyless
// signatures are verified against, offline. It is loaded from a file or bytes the
// caller supplies, never fetched: refreshing it (TUF, or a file a deployment
// mounts) is the caller's business.
//
// With a trusted root, a verifier ([WithTrustedRoot]) accepts a sigstore bundle
// signed with a Fulcio certificate when, by sigstore-go's verification:
//   - the certificate chains to one of the root's certificate authorities;
//   - the bundle carries at least [WithTlogThreshold] (default 1) Rekor entries
//     whose signed entry timestamp or inclusion proof (with its signed checkpoint)
//     verifies with a log key of the root, and that record this signature, this
//     certificate and this artifact;
//   - its RFC 3161 timestamps verify against the root's timestamp authorities
//     ([WithTimestampThreshold] of them required, default 0);
//   - at least one verified time (a log's integrated time or a timestamp) proves
//     when it signed, and the certificate was valid then: the current time is
//     never used, so a bundle with neither is refused, as cosign verify does;
//   - when the root lists CT logs, the certificate carries a signed certificate
//     timestamp from one of them;
//   - the signature verifies with the certificate's key over the artifact;
//
// and the certificate names a trusted identity of the policy (its subject and
// issuer, through [sign.TrustedIdentity.MatchCertificate]).
type TrustedRoot struct {
	root        *root.TrustedRoot
	fingerprint string
	cfg         trustedRootConfig
	verifier    *verify.Verifier
}

type trustedRootConfig struct {
	tlog, tsa int
}

// TrustedRootOption sets what a [TrustedRoot] requires of a keyless signature.
type TrustedRootOption func(*trustedRootConfig)

// WithTlogThreshold sets how many verified transparency log entries a keyless
// signature needs (default 1). 0 requires none (entries are then not checked), for
// bundles that prove their time with timestamps alone ([WithTimestampThreshold]
// must then be at least 1); below 0 is an error wrapping [ErrInvalidOption].
func WithTlogThreshold(n int) TrustedRootOption { return func(c *trustedRootConfig) { c.tlog = n } }

// WithTimestampThreshold sets how many verified RFC 3161 timestamps a keyless
// signature needs (default 0: those a bundle carries are checked and count as
// proof of its signing time, but none are required). Below 0 is an error wrapping
// [ErrInvalidOption].
func WithTimestampThreshold(n int) TrustedRootOption {
	return func(c *trustedRootConfig) { c.tsa = n }
}

// LoadTrustedRoot reads a trusted_root.json from path (at most
// [MaxTrustedRootSize] bytes) and returns it as a [TrustedRoot].
func LoadTrustedRoot(path string, opts ...TrustedRootOption) (*TrustedRoot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustedRoot, err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, MaxTrustedRootSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w", ErrTrustedRoot, path, err)
	}
	tr, err := ParseTrustedRoot(b, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tr, nil
}

// ParseTrustedRoot parses a trusted_root.json (media type
// application/vnd.dev.sigstore.trustedroot+json;version=0.1, at most
// [MaxTrustedRootSize] bytes).
func ParseTrustedRoot(b []byte, opts ...TrustedRootOption) (*TrustedRoot, error) {
	if len(b) > MaxTrustedRootSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrTrustedRoot, MaxTrustedRootSize)
	}
	tr, err := root.NewTrustedRootFromJSON(b)
	if err != nil {
		// sigstore-go's JSON errors name positions and fields, not the file's bytes.
		return nil, fmt.Errorf("%w: %s", ErrTrustedRoot, safeText(err.Error(), 300))
	}
	return NewTrustedRoot(tr, opts...)
}

// NewTrustedRoot wraps a trusted root sigstore-go already holds (one a caller got
// from sigstore's TUF repository with sigstore-go's root.GetTrustedRoot, say).
func NewTrustedRoot(tr *root.TrustedRoot, opts ...TrustedRootOption) (*TrustedRoot, error) {
	if tr == nil {
		return nil, fmt.Errorf("%w: nil", ErrTrustedRoot)
	}
	cfg := trustedRootConfig{tlog: 1}
	for _, o := range opts {
		o(&cfg)
	}
	var bad option.List
	if cfg.tlog < 0 {
		bad.Addf("WithTlogThreshold(%d): below 0", cfg.tlog)
	}
	if cfg.tsa < 0 {
		bad.Addf("WithTimestampThreshold(%d): below 0", cfg.tsa)
	}
	if cfg.tlog == 0 && cfg.tsa == 0 {
		bad.Addf("WithTlogThreshold(0) needs WithTimestampThreshold of at least 1: nothing else proves when a keyless signature was made")
	}
	if err := bad.Err("trusted root"); err != nil {
		return nil, err
	}
	switch {
	case len(tr.FulcioCertificateAuthorities()) == 0:
		return nil, fmt.Errorf("%w: no certificate authority", ErrTrustedRoot)
	case cfg.tlog > 0 && len(tr.RekorLogs()) == 0:
		return nil, fmt.Errorf("%w: no transparency log, and %d log entries are required (WithTlogThreshold)", ErrTrustedRoot, cfg.tlog)
	case cfg.tsa > 0 && len(tr.TimestampingAuthorities()) == 0:
		return nil, fmt.Errorf("%w: no timestamp authority, and %d timestamps are required (WithTimestampThreshold)", ErrTrustedRoot, cfg.tsa)
	}
	js, err := tr.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustedRoot, err)
	}
	sum := sha256.Sum256(fmt.Appendf(js, "\ntlog=%d tsa=%d", cfg.tlog, cfg.tsa))
	// Any verified time (a log's integrated time or a timestamp) proves when the
	// signature was made; the current time never does.
	vopts := []verify.VerifierOption{verify.WithObserverTimestamps(1)}
	if cfg.tlog > 0 {
		vopts = append(vopts, verify.WithTransparencyLog(cfg.tlog))
	}
	if cfg.tsa > 0 {
		vopts = append(vopts, verify.WithSignedTimestamps(cfg.tsa))
	}
	if len(tr.CTLogs()) > 0 {
		vopts = append(vopts, verify.WithSignedCertificateTimestamps(1))
	}
	v, err := verify.NewVerifier(tr, vopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustedRoot, err)
	}
	return &TrustedRoot{root: tr, fingerprint: hex.EncodeToString(sum[:]), cfg: cfg, verifier: v}, nil
}

// Fingerprint is a hash of the trusted root and its thresholds, hex encoded: two
// TrustedRoots with equal fingerprints accept the same signatures.
func (t *TrustedRoot) Fingerprint() string { return t.fingerprint }

// Material returns the trusted root as sigstore-go's trusted material.
func (t *TrustedRoot) Material() root.TrustedMaterial { return t.root }

// String describes the trusted root without its keys.
func (t *TrustedRoot) String() string {
	return fmt.Sprintf("sigstore trusted root %s (%d certificate authorities, %d transparency logs, %d timestamp authorities, %d CT logs; log entries required %d, timestamps %d)",
		t.fingerprint[:16], len(t.root.FulcioCertificateAuthorities()), len(t.root.RekorLogs()), len(t.root.TimestampingAuthorities()),
		len(t.root.CTLogs()), t.cfg.tlog, t.cfg.tsa)
}

// WithTrustedRoot makes a [Verifier] verify keyless signatures, sigstore bundles
// signed with a Fulcio certificate, against tr (see [TrustedRoot] for what that
// checks). The policy's identities without RootsPEM ([sign.TrustedIdentity]) are
// met only this way; a policy with such an identity needs a trusted root, and
// [NewVerifier] refuses it without one. The root is part of the verdict cache's
// key. Signers ignore it (see [Keyless.TrustedRoot]).
func WithTrustedRoot(tr *TrustedRoot) Option { return func(o *options) { o.trustedRoot = tr } }

// keylessPolicyKey checks that a policy with keyless identities (no roots of their
// own) has a trusted root, and returns the verdict cache key with the root's
// fingerprint added to key.
func (o *options) keylessPolicyKey(p sign.Policy, key string) (string, error) {
	if o.trustedRoot == nil {
		for _, id := range p.TrustedIdentities {
			if len(id.RootsPEM) == 0 {
				return "", option.Errorf("trusted identity %s has no RootsPEM: it is verified against a sigstore trusted root, and none is given (WithTrustedRoot)", id.DisplayName())
			}
		}
		return key, nil
	}
	return key + " trusted-root " + o.trustedRoot.Fingerprint(), nil
}
