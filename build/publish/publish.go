// Package publish pushes what package build made to a registry, by digest. Building
// and publishing are apart, as in ko: a build is a value (a v1.ImageIndex) that can
// be scanned, signed or written to a layout before anything is pushed, and a push
// needs no builder.
//
//	digest, err := publish.Index(ctx, idx, repo, publish.WithTags("latest"))
package publish

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
)

// Option configures [Index]. An option given an invalid value makes Index fail
// before it sends any request.
type Option func(*options) error

type options struct {
	keychain  authn.Keychain
	transport http.RoundTripper
	tags      []string
	observer  observe.Observer
	remote    []remote.Option
}

// WithKeychain sets where credentials come from (default authn.DefaultKeychain: the
// Docker config and credential helpers). nil means no keychain, for an explicit
// authenticator given with [WithRemoteOptions] (go-containerregistry refuses both).
func WithKeychain(kc authn.Keychain) Option {
	return func(o *options) error { o.keychain = kc; return nil }
}

// WithTransport sets the HTTP transport, e.g. one that trusts a private CA.
func WithTransport(t http.RoundTripper) Option {
	return func(o *options) error {
		if t == nil {
			return fmt.Errorf("WithTransport: nil transport")
		}
		o.transport = t
		return nil
	}
}

// tagRE is a tag as the OCI distribution spec defines it.
var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// WithTags also points these tags at the pushed index, once it is complete in the
// registry. Digests stay the truth.
func WithTags(tags ...string) Option {
	return func(o *options) error {
		for _, t := range tags {
			if !tagRE.MatchString(t) {
				return fmt.Errorf("WithTags: %q is not a tag (want [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127})", t)
			}
		}
		o.tags = append(o.tags, tags...)
		return nil
	}
}

// WithObserver sends the push to obs (nil: none) as one step of the build stage,
// "push <repository>", with its progress in bytes.
func WithObserver(obs observe.Observer) Option {
	return func(o *options) error { o.observer = obs; return nil }
}

// WithRemoteOptions passes further options to go-containerregistry's remote
// package; they come after shipkit's own (context, 4 jobs, retries), so they win.
// An explicit authenticator (remote.WithAuth) needs [WithKeychain](nil).
func WithRemoteOptions(opts ...remote.Option) Option {
	return func(o *options) error { o.remote = append(o.remote, opts...); return nil }
}

// Index pushes idx to repo by digest and returns that digest. Blobs the registry
// already has are not uploaded again; transient failures are retried. The index is
// reported as published only when every blob and manifest is in the registry; when
// only a tag fails afterwards, the digest is returned with the error.
func Index(ctx context.Context, idx v1.ImageIndex, repo name.Repository, opts ...Option) (name.Digest, error) {
	o := &options{keychain: authn.DefaultKeychain}
	var bad option.List
	for _, opt := range opts {
		bad.Add(opt(o))
	}
	if err := bad.Err("publishing to " + repo.String()); err != nil {
		return name.Digest{}, err
	}
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("publishing to %s: index digest: %w", repo, err)
	}
	ref := repo.Digest(d.String())
	ropts := o.remoteOptions(ctx)
	step := observe.StartStep(o.observer, observe.StageBuild, "push "+repo.String(), 0, "")
	err = writeIndex(ref, idx, ropts, step)
	if err != nil {
		return name.Digest{}, step.Fail(fmt.Errorf("pushing %s: %w", ref, err))
	}
	for _, t := range o.tags {
		tag := repo.Tag(t)
		if err := remote.Tag(tag, idx, ropts...); err != nil {
			// The index is in the registry: say so, and return its digest with the error.
			return ref, step.Fail(fmt.Errorf("pushed %s but tagging it %s failed: %w", ref, tag, err))
		}
	}
	step.Finish(ref.String())
	return ref, nil
}

// writeIndex writes idx to ref, reporting the bytes pushed to step.
func writeIndex(ref name.Digest, idx v1.ImageIndex, ropts []remote.Option, step *observe.Step) error {
	progress, stop := make(chan v1.Update, 16), make(chan struct{})
	// forward reports one update; it returns false once remote closed the channel.
	forward := func(u v1.Update, ok bool) bool {
		if ok && u.Error == nil {
			step.ProgressTo(u.Complete, u.Total, "")
		}
		return ok
	}
	// remote closes progress when the write ends, except when it fails before
	// starting; stop ends the reader in that case, after what is still buffered.
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case u, ok := <-progress:
				if !forward(u, ok) {
					return
				}
			case <-stop:
				for {
					select {
					case u, ok := <-progress:
						if !forward(u, ok) {
							return
						}
					default:
						return
					}
				}
			}
		}
	})
	err := remote.WriteIndex(ref, idx, append(ropts, remote.WithProgress(progress))...)
	close(stop)
	wg.Wait()
	return err
}

func (o *options) remoteOptions(ctx context.Context) []remote.Option {
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithJobs(4),
		remote.WithRetryBackoff(remote.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 4}),
	}
	if o.keychain != nil {
		ropts = append(ropts, remote.WithAuthFromKeychain(o.keychain))
	}
	if o.transport != nil {
		ropts = append(ropts, remote.WithTransport(o.transport))
	}
	return append(ropts, o.remote...)
}
