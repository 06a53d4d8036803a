// Package testca issues the certificates the sign tests need: a root CA, an
// intermediate under it, and code-signing leaves that carry Fulcio's extensions
// (the OIDC issuer, and optionally a username otherName SAN), the way Fulcio or a
// company PKI issues them.
package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// CA is a certificate authority: its certificate and signing key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// PEM is Cert, PEM encoded.
	PEM []byte
}

// Validity is a certificate's validity window.
type Validity struct{ NotBefore, NotAfter time.Time }

// Now is valid from an hour ago to a day from now.
func Now() Validity { return Validity{time.Now().Add(-time.Hour), time.Now().Add(24 * time.Hour)} }

// NewRoot makes a self-signed root CA named cn.
func NewRoot(cn string, v Validity) (*CA, error) {
	return issueCA(cn, v, nil)
}

// Intermediate makes an intermediate CA named cn under ca.
func (ca *CA) Intermediate(cn string, v Validity) (*CA, error) {
	return issueCA(cn, v, ca)
}

func issueCA(cn string, v Validity, parent *CA) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"shipkit test"}},
		NotBefore:             v.NotBefore,
		NotAfter:              v.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	signer, parentCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, parentCert = parent.Key, parent.Cert
	}
	cert, err := create(tmpl, parentCert, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("issue CA %s: %w", cn, err)
	}
	return &CA{Cert: cert, Key: key, PEM: encode(cert)}, nil
}

// Leaf describes a code-signing certificate to issue.
type Leaf struct {
	// PublicKey is the signer's public key. Required.
	PublicKey crypto.PublicKey
	// URIs and Emails are the subject alternative names.
	URIs, Emails []string
	// Username, when set, is a Fulcio username otherName SAN (the SAN extension is
	// then critical and holds only it, as Fulcio writes it).
	Username string
	// Issuer, when set, is written in both of Fulcio's OIDC issuer extensions
	// (1.3.6.1.4.1.57264.1.1 raw, 1.3.6.1.4.1.57264.1.8 UTF8String).
	Issuer string
	// Validity defaults to [Now].
	Validity Validity
	// NoCodeSigning leaves out the code-signing extended key usage.
	NoCodeSigning bool
}

// Issue issues the leaf l under ca and returns it, PEM encoded.
func (ca *CA) Issue(l Leaf) (*x509.Certificate, []byte, error) {
	v := l.Validity
	if v.NotBefore.IsZero() {
		v = Now()
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		NotBefore:      v.NotBefore,
		NotAfter:       v.NotAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		EmailAddresses: l.Emails,
	}
	if l.NoCodeSigning {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, s := range l.URIs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, nil, err
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	if l.Username != "" {
		ext, err := otherNameSAN(l.Username)
		if err != nil {
			return nil, nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	}
	if l.Issuer != "" {
		v2, err := asn1.MarshalWithParams(l.Issuer, "utf8")
		if err != nil {
			return nil, nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions,
			pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}, Value: []byte(l.Issuer)},
			pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}, Value: v2})
	}
	cert, err := create(tmpl, ca.Cert, l.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue leaf: %w", err)
	}
	return cert, encode(cert), nil
}

// otherNameSAN is a critical SAN extension holding one Fulcio username otherName.
func otherNameSAN(user string) (pkix.Extension, error) {
	type otherName struct {
		ID    asn1.ObjectIdentifier
		Value string `asn1:"utf8,explicit,tag:0"`
	}
	on, err := asn1.MarshalWithParams(otherName{ID: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 7}, Value: user}, "tag:0")
	if err != nil {
		return pkix.Extension{}, err
	}
	seq, err := asn1.Marshal([]asn1.RawValue{{FullBytes: on}})
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Critical: true, Value: seq}, nil
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func encode(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
