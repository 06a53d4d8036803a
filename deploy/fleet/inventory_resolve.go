package fleet

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// RegistryResolver returns a [Resolver] that asks the image's registry what a tag
// points to now (a HEAD of the manifest, no layer read), with opts for
// authentication and transport (remote.WithAuthFromKeychain,
// remote.WithTransport); the caller's context is added to each request. No
// options means anonymous access over the default transport.
func RegistryResolver(opts ...remote.Option) Resolver {
	return registryResolver{opts: opts}
}

type registryResolver struct{ opts []remote.Option }

func (r registryResolver) Resolve(ctx context.Context, ref name.Reference) (name.Digest, error) {
	if d, ok := ref.(name.Digest); ok {
		return d, nil
	}
	opts := append(append([]remote.Option(nil), r.opts...), remote.WithContext(ctx))
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return name.Digest{}, err
	}
	return ref.Context().Digest(desc.Digest.String()), nil
}
