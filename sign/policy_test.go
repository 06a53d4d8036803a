package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/report"
)

func publicPEM(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestPolicyKey(t *testing.T) {
	a, b := TrustedKey{Name: "a", PEM: publicPEM(t)}, TrustedKey{Name: "b", PEM: publicPEM(t)}
	p1 := Policy{TrustedKeys: []TrustedKey{a, b}, RequiredPredicates: []string{PredicateVuln, PredicateSPDX},
		Conditions: []Condition{SBOMExists(), VulnRule{FailOn: report.High}}}
	p2 := Policy{TrustedKeys: []TrustedKey{b, a}, Threshold: 1, RequiredPredicates: []string{PredicateSPDX, PredicateVuln},
		Conditions: []Condition{VulnRule{FailOn: report.High}, SBOMExists()}}
	k1, err := p1.Key()
	require.NoError(t, err)
	k2, err := p2.Key()
	require.NoError(t, err)
	assert.Equal(t, k1, k2, "order and an explicit threshold of 1 do not matter")

	for _, p := range []Policy{
		{TrustedKeys: []TrustedKey{a, b}, Threshold: 2},
		{TrustedKeys: []TrustedKey{a}},
		{TrustedKeys: []TrustedKey{a, b}, Conditions: []Condition{VulnRule{FailOn: report.Critical}}},
		{TrustedKeys: []TrustedKey{a, b}, Conditions: []Condition{VulnRule{FailOn: report.High, MaxReportAge: time.Hour}}},
		{TrustedKeys: []TrustedKey{a, b}, Conditions: []Condition{VulnRule{FailOn: report.High, MaxReportAge: NoMaxReportAge}}},
		{TrustedKeys: []TrustedKey{a, b}, Conditions: []Condition{ProvenanceFrom("https://x")}},
	} {
		k, err := p.Key()
		require.NoError(t, err)
		assert.NotEqual(t, k1, k)
	}
}

func TestPolicyValidate(t *testing.T) {
	a := TrustedKey{PEM: publicPEM(t)}
	for _, tc := range []struct {
		p    Policy
		text string
	}{
		{Policy{}, "no trusted keys or identities"},
		{Policy{TrustedKeys: []TrustedKey{{PEM: []byte("garbage")}}}, "policy: trusted key 0: not a PEM public key: no PEM block"},
		{Policy{TrustedKeys: []TrustedKey{{Name: "release", PEM: []byte("garbage")}}}, "policy: trusted key 0 (release): not a PEM public key"},
		{Policy{TrustedKeys: []TrustedKey{a, a}, Threshold: 2}, "threshold 2 cannot be met by 1 distinct trusted signers"},
		{Policy{TrustedKeys: []TrustedKey{a}, Threshold: -1}, "threshold -1"},
		{Policy{TrustedKeys: []TrustedKey{a}, Conditions: []Condition{nil}}, "condition 0 is nil"},
		{Policy{TrustedKeys: []TrustedKey{a}, Conditions: []Condition{VulnRule{}}}, "condition 0: vulnerability rule: Unknown is not a severity threshold"},
		{Policy{TrustedKeys: []TrustedKey{a}, Conditions: []Condition{VulnRule{FailOn: report.High, MaxReportAge: -time.Hour}}},
			"maximum report age -1h0m0s is negative: use sign.NoMaxReportAge"},
	} {
		assert.ErrorContains(t, tc.p.Validate(), tc.text)
	}
	assert.Regexp(t, `^sha256:[0-9a-f]{16}$`, a.DisplayName())
}

// A key that is not a PEM public key says so in words, never with x509's ASN.1
// structure dump, and never quotes the key's bytes.
func TestTrustedKeyNotPublicKey(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	require.NoError(t, err)
	priv, err := x509.MarshalPKCS8PrivateKey(k)
	require.NoError(t, err)
	block := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	for _, tc := range []struct {
		name string
		pem  []byte
		want string
	}{
		{"garbage", []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 me@host"), "not a PEM public key: no PEM block (want -----BEGIN PUBLIC KEY-----"},
		{"empty", nil, "not a PEM public key: no PEM block"},
		{"cut off", block("PUBLIC KEY", der)[:60], "not a PEM public key: no PEM block"},
		{"junk in the block", block("PUBLIC KEY", []byte("hello, world")), `not a PEM public key: the PEM block "PUBLIC KEY" does not hold a PKIX public key`},
		{"truncated DER", block("PUBLIC KEY", der[:len(der)/2]), `the PEM block "PUBLIC KEY" does not hold a PKIX public key`},
		{"private key", block("PRIVATE KEY", priv), `not a PEM public key: a private key (PEM block "PRIVATE KEY"): trust its public key`},
		{"cosign private key", block("ENCRYPTED SIGSTORE PRIVATE KEY", []byte("sealed")), "a private key"},
		{"certificate", block("CERTIFICATE", []byte("xyzzy-cert")), "a certificate"},
		{"trailing data", block("PUBLIC KEY", append(der, 1, 2)), `PEM block "PUBLIC KEY": x509: trailing data`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := TrustedKey{PEM: tc.pem}.Fingerprint()
			require.ErrorIs(t, err, ErrNotPublicKey)
			assert.ErrorContains(t, err, tc.want)
			assert.NotContains(t, err.Error(), "asn1")
			assert.NotContains(t, err.Error(), "structure error")
			if len(tc.pem) > 0 {
				b, _ := pem.Decode(tc.pem)
				if b != nil && len(b.Bytes) > 4 {
					assert.NotContains(t, err.Error(), string(b.Bytes[:4]), "the key's bytes are not quoted")
				}
			}
			err = (&Policy{TrustedKeys: []TrustedKey{{PEM: tc.pem}}}).Validate()
			require.ErrorIs(t, err, ErrNotPublicKey)
		})
	}
	_, err = TrustedKey{PEM: block("PUBLIC KEY", der)}.Fingerprint()
	require.NoError(t, err)
}

func TestConditionsOnUnreadablePredicates(t *testing.T) {
	atts := []Attestation{
		{PredicateType: PredicateSLSAProvenance, Predicate: []byte(`"not an object"`), Signer: "k"},
		{PredicateType: PredicateVuln, Predicate: []byte(`{"scanner":{"result":"not a report"}}`), Signer: "k"},
	}
	assert.Contains(t, ProvenanceFrom("https://x").Check(atts)[0].Message, "cannot be read")
	got := VulnRule{FailOn: report.High}.Check(atts)
	require.Len(t, got, 1)
	assert.Equal(t, ReasonUnreadableReport, got[0].Code)
	assert.Contains(t, got[0].Message, "scanner.result: vulnerability report cannot be read: not a JSON object: the document is a JSON string")
	assert.Equal(t, []Reason{{Code: ReasonMissingAttestation,
		Message: "no SBOM attestation (https://spdx.dev/Document or https://cyclonedx.org/bom) by a trusted signer"}}, SBOMExists().Check(atts))
}

func TestProvenancePredicateErrors(t *testing.T) {
	_, err := Provenance{SourceRepository: "r", SourceRevision: "x"}.Predicate()
	assert.ErrorContains(t, err, "no builder id")
	_, err = Provenance{BuilderID: "b"}.Predicate()
	assert.ErrorContains(t, err, "source repository and revision are required")
	_, err = Provenance{BuilderID: "b", SourceRepository: "r", SourceRevision: "x", BaseDigest: "nocolon"}.Predicate()
	assert.ErrorContains(t, err, "not ALGORITHM:HEX")
}
