package cosign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/shipkit/shipkit/sign"
)

// platformImage is one platform image an image index lists.
type platformImage struct {
	digest   name.Digest
	hash     v1.Hash
	platform *v1.Platform
}

// label names a platform image in reasons as [sign.Policy.Judge] does: its
// platform, else its digest.
func (p platformImage) label() string {
	if p.platform != nil {
		return p.platform.String()
	}
	return p.hash.String()
}

// platforms reads the manifest of d and, when d is an image index, returns the
// platform images it lists, sorted by platform. The index's content is pinned by
// d (go-containerregistry checks the manifest's digest), so its entries can be
// trusted; entries that are not images (BuildKit's attestation manifests, whose
// platform is unknown/unknown, and other artifacts) are skipped. An index that
// lists another index, or more platform images than the limit, is a problem that
// denies; so is an image whose manifest the registry does not have or serves too
// large.
func (v *Verifier) platforms(ctx context.Context, d name.Digest) ([]platformImage, *problem, error) {
	desc, err := v.puller.Get(ctx, d)
	var te *transport.Error
	switch {
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		return nil, denyProblem(sign.ReasonMalformed, "the image's manifest is not in the registry: nothing to verify"), nil
	case errors.Is(err, errBodyTooLarge):
		return nil, denyProblem(sign.ReasonMalformed, fmt.Sprintf(
			"the image's manifest is larger than %d bytes, the limit of a manifest; it was not read", maxManifestSize)), nil
	case err != nil:
		return nil, nil, fmt.Errorf("read the manifest of %s: %w", d, err)
	}
	if !desc.MediaType.IsIndex() {
		return nil, nil, nil
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, denyProblem(sign.ReasonMalformed, "the image index cannot be parsed ("+jsonErrorText(err)+")"), nil
	}
	var out []platformImage
	for i, m := range im.Manifests {
		switch {
		case m.MediaType.IsIndex():
			return nil, denyProblem(sign.ReasonMalformed, fmt.Sprintf(
				"the image index lists another index (entry %d); nested indexes are not verified", i+1)), nil
		case !m.MediaType.IsImage():
			continue
		case m.Platform != nil && m.Platform.OS == "unknown" && m.Platform.Architecture == "unknown":
			continue
		}
		out = append(out, platformImage{digest: d.Context().Digest(m.Digest.String()), hash: m.Digest, platform: m.Platform})
	}
	if n := len(out); n > v.opts.limits.maxPlatforms {
		return nil, denyProblem(sign.ReasonMalformed, fmt.Sprintf(
			"the image index lists %d platform images, more than the limit of %d (cosign.WithMaxPlatforms); none was read", n, v.opts.limits.maxPlatforms)), nil
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].label() < out[j].label() })
	return out, nil, nil
}
