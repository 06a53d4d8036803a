package cosign

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	cosignlib "github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

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

// PrivateKey is a decrypted signing key. It never shows its key material: String and
// GoString name it by its public key's fingerprint.
type PrivateKey struct {
	sv     signature.SignerVerifier
	pubPEM []byte
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
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("load cosign private key: public key: %w", err)
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, fmt.Errorf("load cosign private key: encode public key: %w", err)
	}
	return &PrivateKey{sv: sv, pubPEM: pubPEM}, nil
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

// String names the key by its public key's fingerprint.
func (k PrivateKey) String() string {
	return "cosign private key " + sign.TrustedKey{PEM: k.pubPEM}.DisplayName()
}

// GoString is String, so that %#v shows no key material either.
func (k PrivateKey) GoString() string { return k.String() }

// Format writes String for every verb, so that no fmt verb (%+v, %x, …) prints the
// key's fields.
func (k PrivateKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// LoadTrustedKeyFile reads a PEM public key file (cosign.pub) as a trusted key named
// name (empty: named by its fingerprint).
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
