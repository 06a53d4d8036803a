package cosign_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

func TestKeyPairFilesBytesEnv(t *testing.T) {
	pair := trusted.pair
	assert.True(t, bytes.HasPrefix(pair.PrivatePEM, []byte("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")))
	assert.True(t, bytes.HasPrefix(pair.PublicPEM, []byte("-----BEGIN PUBLIC KEY-----")))

	dir := t.TempDir()
	privPath, pubPath, err := pair.WriteFiles(dir)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "cosign.key"), privPath)
	st, err := os.Stat(privPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	_, _, err = pair.WriteFiles(dir)
	assert.ErrorIs(t, err, os.ErrExist, "WriteFiles must not overwrite a key")

	fromFile, err := cosign.LoadPrivateKeyFile(privPath, password)
	require.NoError(t, err)
	assert.Equal(t, pair.PublicPEM, fromFile.PublicKeyPEM())

	t.Setenv("SHIPKIT_TEST_COSIGN_KEY", string(pair.PrivatePEM))
	fromEnv, err := cosign.LoadPrivateKeyEnv("SHIPKIT_TEST_COSIGN_KEY", password)
	require.NoError(t, err)
	assert.Equal(t, pair.PublicPEM, fromEnv.PublicKeyPEM())
	_, err = cosign.LoadPrivateKeyEnv("SHIPKIT_TEST_UNSET_VARIABLE", password)
	assert.ErrorContains(t, err, "environment variable SHIPKIT_TEST_UNSET_VARIABLE is not set")

	tk, err := cosign.LoadTrustedKeyFile(pubPath, "release")
	require.NoError(t, err)
	assert.Equal(t, "release", tk.DisplayName())
	_, err = cosign.LoadTrustedKeyFile(privPath, "")
	require.ErrorIs(t, err, sign.ErrNotPublicKey, "a private key is not a public key")
	assert.ErrorContains(t, err, "load public key "+privPath+": not a PEM public key: a private key")
	garbagePath := filepath.Join(dir, "garbage.pub")
	require.NoError(t, os.WriteFile(garbagePath, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), 0o600))
	_, err = cosign.LoadTrustedKeyFile(garbagePath, "")
	require.ErrorIs(t, err, sign.ErrNotPublicKey)
	assert.ErrorContains(t, err, "load public key "+garbagePath+": not a PEM public key: the PEM block \"PUBLIC KEY\" does not hold a PKIX public key")
	assert.NotContains(t, err.Error(), "asn1")
}

func TestLoadPrivateKeyErrors(t *testing.T) {
	keyPEM := trusted.pair.PrivatePEM
	for _, tc := range []struct {
		name     string
		pem      []byte
		password []byte
		is       error
		text     string
	}{
		{"wrong password", keyPEM, []byte("wrong password"), cosign.ErrWrongPassword, "wrong password"},
		{"empty password", keyPEM, nil, cosign.ErrWrongPassword, "wrong password"},
		{"garbage", []byte("garbage"), password, nil, "no PEM block"},
		{"truncated", keyPEM[:len(keyPEM)/2], password, nil, "no PEM block"},
		{"unencrypted PEM", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), password, nil, `PEM block of type "PRIVATE KEY"`},
		{"altered ciphertext", alterCiphertext(t, keyPEM), password, nil, "load cosign private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := cosign.LoadPrivateKey(tc.pem, tc.password)
			require.Error(t, err)
			assert.Nil(t, k)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			assert.Contains(t, err.Error(), tc.text)
			assertNoSecrets(t, err.Error())
		})
	}
}

// alterCiphertext flips one character of the base64 body of a PEM block.
func alterCiphertext(t *testing.T, pem []byte) []byte {
	t.Helper()
	lines := strings.Split(string(pem), "\n")
	require.Greater(t, len(lines), 3)
	b := []byte(lines[2])
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	lines[2] = string(b)
	return []byte(strings.Join(lines, "\n"))
}

// assertNoSecrets fails when s holds the password or any part of a private key.
func assertNoSecrets(t *testing.T, s string) {
	t.Helper()
	assert.NotContains(t, s, string(password), "the password leaked")
	assert.NotContains(t, s, fmt.Sprintf("%x", password), "the password leaked")
	for _, k := range []testKey{trusted, trusted2, untrusted} {
		for _, scalar := range privateScalars(t, k) {
			assert.NotContains(t, s, scalar, "the private key leaked")
		}
		body := string(k.pair.PrivatePEM)
		for _, line := range strings.Split(body, "\n")[1:4] {
			assert.NotContains(t, s, line, "private key material leaked")
		}
	}
}

// TestSecretsNeverShown formats keys every way fmt can and runs a signing and a
// failed verification with a debug logger: neither the password nor the private key
// may appear in any output, log or error.
func TestSecretsNeverShown(t *testing.T) {
	var out bytes.Buffer
	for _, v := range []any{trusted.key, *trusted.key, trusted.pair, *trusted.pair, []any{trusted.key}} {
		fmt.Fprintf(&out, "%v %+v %#v %s %x %d\n", v, v, v, v, v, v)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	host := newRegistry(t)
	d := pushImage(t, host, "team/app", "v1")
	s := newSigner(t, trusted, cosign.WithLogger(log))
	require.NoError(t, s.Sign(context.Background(), d))
	_, _, prov := predicates(t, sourceRepo)
	require.NoError(t, s.Attest(context.Background(), d, prov))
	_, err := newVerifier(t, fullPolicy(untrusted.trustedKey()), cosign.WithLogger(log)).Verify(context.Background(), d)
	require.ErrorIs(t, err, sign.ErrDenied)
	fmt.Fprintln(&out, err)
	_, err = cosign.LoadPrivateKey(trusted.pair.PrivatePEM, []byte("not "+string(password)))
	fmt.Fprintln(&out, err)

	require.NotEmpty(t, logs.String(), "the test must see some logs")
	assertNoSecrets(t, out.String())
	assertNoSecrets(t, logs.String())
	assert.Contains(t, out.String(), "cosign private key sha256:")
}

// privateScalars returns the private ECDSA scalar of k as fmt would print it.
func privateScalars(t *testing.T, k testKey) []string {
	t.Helper()
	block, _ := pem.Decode(k.pair.PrivatePEM)
	require.NotNil(t, block)
	der, err := encrypted.Decrypt(block.Bytes, password)
	require.NoError(t, err)
	pk, err := x509.ParsePKCS8PrivateKey(der)
	require.NoError(t, err)
	raw, err := pk.(*ecdsa.PrivateKey).Bytes()
	require.NoError(t, err)
	d := new(big.Int).SetBytes(raw)
	return []string{d.String(), fmt.Sprintf("%x", raw), base64.StdEncoding.EncodeToString(raw)}
}
