package registry_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/internal/testbed/registry"
)

var (
	inProcess = testbed.Lazy[string]{Start: func() (string, func(), error) {
		return registry.NewInProcess()
	}}
	distribution = testbed.Lazy[*registry.Distribution]{Start: registry.Start}
)

func TestMain(m *testing.M) {
	code := m.Run()
	inProcess.Stop()
	distribution.Stop()
	os.Exit(code)
}

// pushPull pushes a random image to host with opts, pulls it back by digest and checks
// that the digests match. It returns the push's error.
func pushPull(t *testing.T, host string, opts ...remote.Option) error {
	t.Helper()
	img, err := random.Image(1024, 2)
	require.NoError(t, err)
	want, err := img.Digest()
	require.NoError(t, err)
	repo, err := name.NewRepository(host + "/testbed/" + strings.ToLower(t.Name()))
	require.NoError(t, err)
	opts = append(opts, remote.WithContext(t.Context()))
	if err := remote.Write(repo.Tag("latest"), img, opts...); err != nil {
		return err
	}
	got, err := remote.Image(repo.Digest(want.String()), opts...)
	require.NoError(t, err, "pull by digest")
	gotDigest, err := got.Digest()
	require.NoError(t, err)
	assert.Equal(t, want, gotDigest)
	return nil
}

func TestInProcess(t *testing.T) {
	host := inProcess.Get(t)
	assert.True(t, strings.HasPrefix(host, "127.0.0.1:"), host)
	require.NoError(t, pushPull(t, host))
}

func TestDistribution(t *testing.T) {
	d := distribution.Get(t)
	assert.True(t, strings.HasPrefix(d.Host, "127.0.0.1:"), d.Host)

	untrusting := d.Transport.Clone()
	untrusting.TLSClientConfig = &tls.Config{RootCAs: x509.NewCertPool()} // a pool without our CA

	tests := []struct {
		name  string
		opts  []remote.Option
		check func(t *testing.T, err error)
	}{{
		name:  "no credentials",
		opts:  []remote.Option{remote.WithTransport(d.Transport)},
		check: unauthorized,
	}, {
		name:  "wrong password",
		opts:  []remote.Option{remote.WithTransport(d.Transport), remote.WithAuth(&authn.Basic{Username: d.Username, Password: "wrong"})},
		check: unauthorized,
	}, {
		name: "CA not trusted",
		opts: []remote.Option{remote.WithTransport(untrusting), remote.WithAuth(d.Authenticator())},
		check: func(t *testing.T, err error) {
			var verr *tls.CertificateVerificationError
			require.ErrorAs(t, err, &verr)
			assert.ErrorAs(t, err, new(x509.UnknownAuthorityError))
		},
	}, {
		name:  "credentials and CA",
		opts:  d.RemoteOptions(),
		check: func(t *testing.T, err error) { require.NoError(t, err) },
	}, {
		name:  "keychain",
		opts:  []remote.Option{remote.WithTransport(d.Transport), remote.WithAuthFromKeychain(d.Keychain())},
		check: func(t *testing.T, err error) { require.NoError(t, err) },
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pushPull(t, d.Host, tt.opts...)
			tt.check(t, err)
			if t.Failed() {
				t.Logf("registry log:\n%s", d.Log())
			}
		})
	}
}

func TestStartDistributionCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	d, err := registry.StartDistribution(ctx)
	testbed.Check(t, err)
	defer d.Stop()
	cancel()
	// The process dies with ctx: the registry stops answering.
	tr := d.Transport.Clone()
	tr.DisableKeepAlives = true
	client := &http.Client{Transport: tr, Timeout: time.Second}
	require.Eventually(t, func() bool {
		resp, err := client.Get("https://" + d.Host + "/v2/")
		if err != nil {
			return true
		}
		_ = resp.Body.Close()
		return false
	}, 10*time.Second, 50*time.Millisecond)
}

// unauthorized checks that err is the registry's 401. The push fails at its first HEAD,
// so the error carries no diagnostics from a body.
func unauthorized(t *testing.T, err error) {
	var terr *transport.Error
	require.ErrorAs(t, err, &terr)
	assert.Equal(t, http.StatusUnauthorized, terr.StatusCode)
}
