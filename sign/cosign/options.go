package cosign

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"

	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/sign"
)

// Option configures a [Signer] or a [Verifier].
type Option func(*options)

type options struct {
	remote   []remote.Option
	keychain authn.Keychain
	rt       http.RoundTripper
	log      *slog.Logger
	cache    *sign.Cache
	noCache  bool
	observer observe.Observer
	limits   limits
	// trustedRoot verifies keyless signatures (WithTrustedRoot, trustedroot.go).
	trustedRoot *TrustedRoot
	// format is the layout a Signer writes (WithFormat).
	format Format
}

func newOptions(opts []Option) options {
	o := options{keychain: authn.DefaultKeychain, limits: defaultLimits()}
	for _, opt := range opts {
		opt(&o)
	}
	o.log = observe.OrDiscardLogger(o.log)
	o.observer = observe.OrDiscard(o.observer)
	return o
}

// WithRemoteOptions adds go-containerregistry remote options to every registry call
// (after the keychain and transport of [WithKeychain] and [WithTransport]).
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(o *options) { o.remote = append(o.remote, opts...) }
}

// WithKeychain sets where registry credentials come from; the default is
// authn.DefaultKeychain (the Docker config).
func WithKeychain(k authn.Keychain) Option { return func(o *options) { o.keychain = k } }

// WithTransport sets the HTTP transport to the registry, e.g. one that trusts a
// private CA.
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.rt = rt } }

// WithLogger logs to l (default and nil: nowhere). Keys and passwords are never
// logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithObserver reports each signature, attestation and verification to obs as a
// step of the "sign" stage: "sign REPO@DIGEST", "attest PREDICATE-TYPE
// REPO@DIGEST" and "verify REPO@DIGEST" start, then finish or fail (with the
// error: a verification the policy denies fails with the *[sign.DeniedError]).
// Messages name keys by fingerprint and certificates by subject; they never hold
// key material or passwords. The default (and nil) drops every event.
func WithObserver(obs observe.Observer) Option { return func(o *options) { o.observer = obs } }

// start reports a step of the sign stage named name started; end it with
// Finish or Fail.
func (o *options) start(name string) *observe.Step {
	return observe.StartStep(o.observer, observe.StageSign, name, 0, "")
}

// WithCache makes a [Verifier] keep its verdicts in c, which verifiers can share; by
// default each verifier has its own cache with [sign.DefaultCacheTTL] for a pass
// and [sign.DefaultDeniedTTL] for a denial. WithCache(nil) turns caching off.
// Signers ignore it.
func WithCache(c *sign.Cache) Option {
	return func(o *options) { o.cache, o.noCache = c, c == nil }
}

// remoteOptions returns the go-containerregistry options for one call.
func (o *options) remoteOptions(ctx context.Context) []remote.Option {
	ro := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(o.keychain)}
	if o.rt != nil {
		ro = append(ro, remote.WithTransport(o.rt))
	}
	return append(ro, o.remote...)
}

// ociOptions returns cosign's registry options for one call. They replace cosign's
// defaults (which read the Docker config) with ours.
func (o *options) ociOptions(ctx context.Context) []ociremote.Option {
	return []ociremote.Option{ociremote.WithRemoteOptions(o.remoteOptions(ctx)...)}
}

// newPuller returns a go-containerregistry Puller with the registry options: calls
// made through it share each repository's authentication and ping, which a new
// transport per call would repeat (a TLS handshake and a token exchange each time).
// Its transport cuts response bodies off at the limits (see [capTransport]).
func (o *options) newPuller() (*remote.Puller, error) {
	rt := o.rt
	if rt == nil {
		rt = remote.DefaultTransport
	}
	rt = &capTransport{base: rt, max: max(o.limits.maxPayload, maxManifestSize)}
	ro := []remote.Option{remote.WithAuthFromKeychain(o.keychain), remote.WithTransport(rt)}
	return remote.NewPuller(append(ro, o.remote...)...)
}

// pullOptions returns cosign's registry options for one read through p.
func pullOptions(ctx context.Context, p *remote.Puller) []ociremote.Option {
	return []ociremote.Option{ociremote.WithRemoteOptions(remote.WithContext(ctx), remote.Reuse(p))}
}
