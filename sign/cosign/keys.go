package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	cosignlib "github.com/sigstore/cosign/v2/pkg/cosign"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/shipkit/shipkit/sign"
)

// File names cosign generate-key-pair writes, and [KeyPair.WriteFiles] too.
const (
	PrivateKeyFile = "cosign.key"
	PublicKeyFile  = "cosign.pub"
)

// ErrWrongPassword is matched (errors.Is) by the error of loading a private key with
// a password that does not decrypt it. The key's encryption cannot tell a wrong
// password from a damaged key, so this also means the key was altered.
var ErrWrongPassword = errors.New("wrong password for the private key (or the key is damaged)")

// KeyPair is a cosign key pair, encoded as cosign generate-key-pair writes it.
type KeyPair struct {
	// PrivatePEM is the private key, encrypted with the password (scrypt and
	// NaCl secretbox) in a PEM block of type "ENCRYPTED SIGSTORE PRIVATE KEY".
	PrivatePEM []byte
	// PublicPEM is the public key, PEM encoded (PKIX).
	PublicPEM []byte
}

// GenerateKeyPair makes a new ECDSA P-256 key pair, the private key encrypted with
// password. An empty password is allowed, as by cosign, but leaves the key readable to
// anyone who can read its file.
func GenerateKeyPair(password []byte) (*KeyPair, error) {
	kb, err := cosignlib.GenerateKeyPair(func(bool) ([]byte, error) { return password, nil })
	if err != nil {
		return nil, fmt.Errorf("generate cosign key pair: %w", err)
	}
	return &KeyPair{PrivatePEM: kb.PrivateBytes, PublicPEM: kb.PublicBytes}, nil
}

// String names the key pair by its public key's fingerprint; it shows no key material.
func (k KeyPair) String() string {
	return "cosign key pair " + sign.TrustedKey{PEM: k.PublicPEM}.DisplayName()
}

// GoString is String, so that %#v shows no key material either.
func (k KeyPair) GoString() string { return k.String() }

// Format writes String for every verb, so that no fmt verb prints the encrypted key.
func (k KeyPair) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// WriteFiles writes the key pair into dir as cosign.key (mode 0600) and cosign.pub
// (0644), the files cosign's --key flags read. It refuses to overwrite either file.
func (k *KeyPair) WriteFiles(dir string) (privPath, pubPath string, err error) {
	privPath, pubPath = filepath.Join(dir, PrivateKeyFile), filepath.Join(dir, PublicKeyFile)
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{privPath, k.PrivatePEM, 0o600}, {pubPath, k.PublicPEM, 0o644}} {
		if err := writeNew(f.path, f.data, f.mode); err != nil {
			return "", "", fmt.Errorf("write cosign key pair: %w", err)
		}
	}
	return privPath, pubPath, nil
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// PrivateKey is a signing key: a decrypted cosign key, a key in a KMS
// ([LoadKMSKey]) or any sigstore signature.SignerVerifier ([NewPrivateKey]),
// optionally with a certificate that names its holder ([PrivateKey.WithCertificate]).
// It never shows its key material: String and GoString name it by its public key's
// fingerprint.
type PrivateKey struct {
	sv     signature.SignerVerifier
	pub    crypto.PublicKey
	pubPEM []byte
	kind   string // what the key is, for String: "cosign private key", "KMS key REF"
	// certPEM and chainPEM are the key's certificate and its issuers (up to the
	// root), attached to every signature; empty without a certificate.
	certPEM, chainPEM []byte
	cert              *x509.Certificate
	// finish, when set, completes each sigstore bundle the key signs before it is
	// pushed: a keyless key's transparency log entry and timestamps
	// (KeylessSigner.Key, keyless.go).
	finish func(ctx context.Context, b *protobundle.Bundle) error
}

// NewPrivateKey makes a signing key of sv, any sigstore signer: a KMS key (see
// [LoadKMSKey]), a hardware token, or a key in memory. Signatures are made by
// sv.SignMessage over cosign's payloads, so sv must hash with SHA-256 as cosign's
// verifiers expect (every sigstore signer loaded with crypto.SHA256 does).
func NewPrivateKey(ctx context.Context, sv signature.SignerVerifier) (*PrivateKey, error) {
	return newPrivateKey(ctx, sv, "signing key")
}

func newPrivateKey(ctx context.Context, sv signature.SignerVerifier, kind string) (*PrivateKey, error) {
	if sv == nil {
		return nil, errors.New("signing key: no signer")
	}
	pub, err := sv.PublicKey(sigopts.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%s: public key: %w", kind, err)
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, fmt.Errorf("%s: encode public key: %w", kind, err)
	}
	return &PrivateKey{sv: sv, pub: pub, pubPEM: pubPEM, kind: kind}, nil
}

// LoadPrivateKey decrypts a cosign private key (PEM of type "ENCRYPTED SIGSTORE
// PRIVATE KEY" or "ENCRYPTED COSIGN PRIVATE KEY") with password. A password that does
// not decrypt it gives an error wrapping [ErrWrongPassword].
func LoadPrivateKey(privatePEM, password []byte) (*PrivateKey, error) {
	block, _ := pem.Decode(privatePEM)
	if block == nil {
		return nil, errors.New("load cosign private key: no PEM block")
	}
	if block.Type != cosignlib.SigstorePrivateKeyPemType && block.Type != cosignlib.CosignPrivateKeyPemType {
		return nil, fmt.Errorf("load cosign private key: PEM block of type %q, want %q", block.Type, cosignlib.SigstorePrivateKeyPemType)
	}
	// cosign.LoadPrivateKey does these steps too, but reports a wrong password only as
	// text; decrypting here tells it apart.
	der, err := encrypted.Decrypt(block.Bytes, password)
	if err != nil {
		// The library has no sentinel for it: secretbox's authentication failure is
		// this text, the other errors (unknown KDF, bad JSON) name the fault.
		if err.Error() == "encrypted: decryption failed" {
			return nil, fmt.Errorf("load cosign private key: %w", ErrWrongPassword)
		}
		return nil, fmt.Errorf("load cosign private key: decrypt: %w", err)
	}
	pk, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("load cosign private key: parse decrypted key: %w", err)
	}
	sv, err := signature.LoadDefaultSignerVerifier(pk, *cosignlib.GetDefaultLoadOptions(nil)...)
	if err != nil {
		return nil, fmt.Errorf("load cosign private key: %w", err)
	}
	return newPrivateKey(context.Background(), sv, "cosign private key")
}

// LoadPrivateKeyFile reads and decrypts a cosign private key file (cosign.key).
func LoadPrivateKeyFile(path string, password []byte) (*PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load cosign private key: %w", err)
	}
	k, err := LoadPrivateKey(b, password)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadPrivateKeyEnv decrypts the cosign private key held, PEM encoded, in the
// environment variable name (as cosign's --key env://NAME reads it).
func LoadPrivateKeyEnv(name string, password []byte) (*PrivateKey, error) {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return nil, fmt.Errorf("load cosign private key: environment variable %s is not set", name)
	}
	k, err := LoadPrivateKey([]byte(v), password)
	if err != nil {
		return nil, fmt.Errorf("environment variable %s: %w", name, err)
	}
	return k, nil
}

// PublicKeyPEM returns the key's public key, PEM encoded.
func (k *PrivateKey) PublicKeyPEM() []byte { return append([]byte(nil), k.pubPEM...) }

// TrustedKey returns the key's public key as a [sign.TrustedKey] named name.
func (k *PrivateKey) TrustedKey(name string) sign.TrustedKey {
	return sign.TrustedKey{Name: name, PEM: k.PublicKeyPEM()}
}

// String names the key by what it is and its public key's fingerprint, and the
// certificate's subject when it has one.
func (k PrivateKey) String() string {
	s := k.kind + " " + sign.TrustedKey{PEM: k.pubPEM}.DisplayName()
	if k.cert != nil {
		s += " with certificate for " + strings.Join(sign.SubjectAlternativeNames(k.cert), ", ")
	}
	return s
}

// GoString is String, so that %#v shows no key material either.
func (k PrivateKey) GoString() string { return k.String() }

// Format writes String for every verb, so that no fmt verb (%+v, %x, …) prints the
// key's fields.
func (k PrivateKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// WithCertificate returns a copy of the key that attaches certPEM, a certificate
// for the key's public key, and chainPEM, the certificates of its issuers from the
// intermediate up to the root (PEM; may be empty), to every signature and
// attestation, as cosign sign --certificate --certificate-chain does. A policy then
// trusts the signatures by the certificate's identity ([sign.TrustedIdentity]), and
// cosign verify --certificate-chain accepts them.
//
// This is also where a keyless signer plugs in: generate a key
// (signature.NewDefaultECDSASignerVerifier), have Fulcio certify it for an OIDC
// token (for example with github.com/sigstore/fulcio/pkg/api's SigningCert, which
// returns the certificate and its chain), and pass both here. Nothing is uploaded to
// a transparency log, so verifiers accept the signatures only while the
// certificate is valid (minutes, for Fulcio's).
//
// The certificate must be for the key, and chain to the last certificate of
// chainPEM through the others for code signing (as the cosign CLI checks).
func (k *PrivateKey) WithCertificate(certPEM, chainPEM []byte) (*PrivateKey, error) {
	certs, err := sign.ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("signing certificate: %d certificates, want 1 (put its issuers in the chain)", len(certs))
	}
	leaf := certs[0]
	if err := cryptoutils.EqualKeys(leaf.PublicKey, k.pub); err != nil {
		return nil, fmt.Errorf("signing certificate for %s is not for this key (%s)", strings.Join(sign.SubjectAlternativeNames(leaf), ", "), k)
	}
	chain, err := sign.ParseCertificates(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate chain: %w", err)
	}
	if len(chain) > 0 {
		opts := x509.VerifyOptions{Roots: x509.NewCertPool(), Intermediates: x509.NewCertPool(),
			CurrentTime: leaf.NotBefore, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}
		opts.Roots.AddCert(chain[len(chain)-1])
		for _, c := range chain[:len(chain)-1] {
			opts.Intermediates.AddCert(c)
		}
		if _, err := leaf.Verify(opts); err != nil {
			return nil, fmt.Errorf("signing certificate does not chain to the root of its chain (the chain's last certificate): %w", err)
		}
	}
	c := *k
	c.certPEM, c.chainPEM, c.cert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), nil, leaf
	for _, cc := range chain {
		c.chainPEM = append(c.chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cc.Raw})...)
	}
	return &c, nil
}

// CertificatePEM returns the key's certificate, nil without one.
func (k *PrivateKey) CertificatePEM() []byte { return bytes.Clone(k.certPEM) }

// ChainPEM returns the issuers of the key's certificate, nil without them.
func (k *PrivateKey) ChainPEM() []byte { return bytes.Clone(k.chainPEM) }

// checkCertificate returns an error when the key has a certificate that is not
// valid at now: its signatures would be refused by every verifier.
func (k *PrivateKey) checkCertificate(now time.Time) error {
	if k.cert == nil {
		return nil
	}
	if now.Before(k.cert.NotBefore) || now.After(k.cert.NotAfter) {
		return fmt.Errorf("signing certificate for %s is valid from %s to %s, not now (%s): verifiers would refuse the signature",
			strings.Join(sign.SubjectAlternativeNames(k.cert), ", "), k.cert.NotBefore.UTC().Format(time.RFC3339),
			k.cert.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// LoadTrustedKeyFile reads a PEM public key file (cosign.pub) as a trusted key named
// name (empty: named by its fingerprint). A file that is not a PEM public key (a
// private key, a certificate, anything else) is an error wrapping
// [sign.ErrNotPublicKey] that names the file and says which.
func LoadTrustedKeyFile(path, name string) (sign.TrustedKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return sign.TrustedKey{}, fmt.Errorf("load public key: %w", err)
	}
	k := sign.TrustedKey{Name: name, PEM: b}
	if _, err := k.Fingerprint(); err != nil {
		return sign.TrustedKey{}, fmt.Errorf("load public key %s: %w", path, err)
	}
	return k, nil
}
