package build

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipkit/shipkit/observe"
)

// PublishOption configures [Publish].
type PublishOption func(*publishOptions)

type publishOptions struct {
	keychain  authn.Keychain
	transport http.RoundTripper
	tags      []string
	jobs      int
	observer  observe.Observer
	remote    []remote.Option
}

// WithKeychain sets where credentials come from (default authn.DefaultKeychain:
// the Docker config and credential helpers).
func WithKeychain(kc authn.Keychain) PublishOption {
	return func(o *publishOptions) { o.keychain = kc }
}

// WithTransport sets the HTTP transport, e.g. one that trusts a private CA.
func WithTransport(t http.RoundTripper) PublishOption {
	return func(o *publishOptions) { o.transport = t }
}

// WithTags also points these tags at the pushed index. Digests stay the truth.
func WithTags(tags ...string) PublishOption {
	return func(o *publishOptions) { o.tags = append(o.tags, tags...) }
}

// WithPublishObserver sends push progress (bytes) to obs.
func WithPublishObserver(obs observe.Observer) PublishOption {
	return func(o *publishOptions) { o.observer = obs }
}

// WithRemoteOptions passes further options to go-containerregistry's remote package.
// An explicit authenticator (remote.WithAuth) needs [WithKeychain](nil), since the
// remote package refuses both at once.
func WithRemoteOptions(opts ...remote.Option) PublishOption {
	return func(o *publishOptions) { o.remote = append(o.remote, opts...) }
}

// Publish pushes idx to repo by digest and returns that digest. Blobs the registry
// already has are not uploaded again; transient failures are retried. The index is
// reported as published only when every blob and manifest is in the registry; when
// only a tag fails afterwards, the digest is returned with the error.
func Publish(ctx context.Context, idx v1.ImageIndex, repo name.Repository, opts ...PublishOption) (name.Digest, error) {
	o := &publishOptions{keychain: authn.DefaultKeychain, jobs: 4, observer: observe.Discard{}}
	for _, opt := range opts {
		opt(o)
	}
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, fmt.Errorf("publishing to %s: index digest: %w", repo, err)
	}
	ref := repo.Digest(d.String())
	ropts := o.remoteOptions(ctx)
	step := "push " + repo.String()
	emit := func(e observe.Event) {
		e.Stage, e.Step, e.Time = "build", step, time.Now()
		o.observer.Observe(e)
	}
	// forward reports one update; it returns false once remote closed the channel.
	progress, stop := make(chan v1.Update, 16), make(chan struct{})
	forward := func(u v1.Update, ok bool) bool {
		if ok && u.Error == nil {
			emit(observe.Event{Phase: observe.Progress, Done: u.Complete, Total: u.Total})
		}
		return ok
	}
	// remote closes progress when the write ends, except when it fails before
	// starting; stop ends the reader in that case, after what is still buffered.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
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
	}()
	emit(observe.Event{Phase: observe.Started})
	err = remote.WriteIndex(ref, idx, append(ropts, remote.WithProgress(progress))...)
	close(stop)
	wg.Wait()
	if err != nil {
		err = fmt.Errorf("pushing %s: %w", ref, err)
		emit(observe.Event{Phase: observe.Failed, Err: err})
		return name.Digest{}, err
	}
	for _, t := range o.tags {
		tag := repo.Tag(t)
		if err := remote.Tag(tag, idx, ropts...); err != nil {
			// The index is in the registry: say so, and return its digest with the error.
			err = fmt.Errorf("pushed %s but tagging it %s failed: %w", ref, tag, err)
			emit(observe.Event{Phase: observe.Failed, Err: err})
			return ref, err
		}
	}
	emit(observe.Event{Phase: observe.Finished, Message: ref.String()})
	return ref, nil
}

func (o *publishOptions) remoteOptions(ctx context.Context) []remote.Option {
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithJobs(o.jobs),
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
