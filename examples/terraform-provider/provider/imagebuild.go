package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/observe"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// DefaultPasswordEnv is the environment variable the signing key's password is read
// from unless the sign block names another: the cosign CLI's.
const DefaultPasswordEnv = "COSIGN_PASSWORD"

// imageSpec is what shipkit_image builds, read from its configuration.
type imageSpec struct {
	dir, pkg  string
	repo      name.Repository
	platforms []string
	base      string // empty: build.Static, the SDK's default
	ldflags   string
	sign      *signSpec
}

// signSpec says which key signs the image.
type signSpec struct {
	keyFile     string // a cosign.key file, or
	keyEnv      string // the variable that holds the PEM of one
	passwordEnv string // the variable that holds its password
}

// buildAndPush builds the image index and pushes it by digest.
func (c *clients) buildAndPush(ctx context.Context, s imageSpec, obs observe.Observer) (name.Digest, error) {
	opts := []build.Option{build.WithPlatforms(s.platforms...), build.WithObserver(obs)}
	if s.base != "" {
		ref, err := name.ParseReference(s.base, c.nameOptions()...)
		if err != nil {
			return name.Digest{}, fmt.Errorf("base %q: %w", s.base, err)
		}
		opts = append(opts, build.WithBase(build.RemoteBaseRef(ref, remote.WithAuthFromKeychain(c.keychain))))
	}
	if s.ldflags != "" {
		opts = append(opts, build.WithLdflags(s.ldflags))
	}
	if c.cfg.binCache != "" {
		opts = append(opts, build.WithBinaryCache(c.cfg.binCache))
	}
	b, err := build.NewGo(opts...)
	if err != nil {
		return name.Digest{}, err
	}
	idx, err := b.Build(ctx, build.Source{Dir: s.dir, Path: s.pkg})
	if err != nil {
		return name.Digest{}, err
	}
	return publish.Index(ctx, idx, s.repo, publish.WithKeychain(c.keychain), publish.WithObserver(obs))
}

// signImage signs d with the key of s and returns the key's public half.
func (c *clients) signImage(ctx context.Context, d name.Digest, s signSpec) (sign.TrustedKey, error) {
	password := []byte(os.Getenv(s.passwordEnv))
	var (
		key *cosign.PrivateKey
		err error
	)
	if s.keyFile != "" {
		key, err = cosign.LoadPrivateKeyFile(s.keyFile, password)
	} else {
		key, err = cosign.LoadPrivateKeyEnv(s.keyEnv, password)
	}
	if err != nil {
		if errors.Is(err, cosign.ErrWrongPassword) {
			err = fmt.Errorf("%w (the password is read from $%s)", err, s.passwordEnv)
		}
		return sign.TrustedKey{}, err
	}
	signer, err := cosign.NewSigner(key, cosign.WithKeychain(c.keychain))
	if err != nil {
		return sign.TrustedKey{}, err
	}
	if err := signer.Sign(ctx, d); err != nil {
		return sign.TrustedKey{}, err
	}
	return key.TrustedKey(""), nil
}

// imageExists reports whether the registry still has the manifest d.
func (c *clients) imageExists(ctx context.Context, d name.Digest) (bool, error) {
	_, err := remote.Head(d, c.remoteOptions(ctx)...)
	var terr *transport.Error
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		return false, nil
	default:
		return false, fmt.Errorf("looking up %s: %w", d, err)
	}
}

// stillSigned reports whether key's signature of d still verifies.
func (c *clients) stillSigned(ctx context.Context, d name.Digest, key sign.TrustedKey) (bool, error) {
	v, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key}},
		cosign.WithKeychain(c.keychain), cosign.WithCache(nil))
	if err != nil {
		return false, err
	}
	_, err = v.Verify(ctx, d)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, sign.ErrDenied):
		return false, nil
	default:
		return false, err
	}
}
