package cosign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"

	"github.com/shipkit/shipkit/sign"
)

// kind is what a cosign tag holds: signatures or attestations.
type kind int

const (
	kindSignature kind = iota
	kindAttestation
	nKinds
)

func (k kind) String() string {
	if k == kindSignature {
		return "signature"
	}
	return "attestation"
}

// tag returns the cosign tag of subject that holds layers of kind k.
func (k kind) tag(subject name.Digest, oo ...ociremote.Option) (name.Tag, error) {
	if k == kindSignature {
		return ociremote.SignatureTag(subject, oo...)
	}
	return ociremote.AttestationTag(subject, oo...)
}

// listing is what one cosign tag lists: the descriptors of its layers, each read
// and judged on its own, or the problem that keeps them from being read.
//
// It is the unit a discovery path yields. The legacy path (list) reads one tag's
// manifest; a second path (OCI 1.1 referrers, sigstore bundles) yields listings of
// its own, judged the same way.
type listing struct {
	// repo is the repository the layers are read from.
	repo   name.Repository
	layers []v1.Descriptor
	// problem, when set, denies the image whatever else verified (a tag over the
	// limits, or one that is not an image manifest); layers is then empty.
	problem *problem
}

// list reads the manifest of subject's cosign tag of kind k. A tag that does not
// exist lists nothing.
func (v *Verifier) list(ctx context.Context, subject name.Digest, k kind) (listing, error) {
	tag, err := k.tag(subject, pullOptions(ctx, v.puller)...)
	if err != nil {
		return listing{}, err
	}
	out := listing{repo: tag.Context()}
	desc, err := v.puller.Get(ctx, tag)
	var te *transport.Error
	switch {
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		return out, nil
	case errors.Is(err, errBodyTooLarge):
		out.problem = denyProblem(sign.ReasonMalformed, fmt.Sprintf(
			"the %s tag's manifest is larger than %d bytes, the limit of a manifest; it was not read", k, maxManifestSize))
		return out, nil
	case err != nil:
		return listing{}, fmt.Errorf("read %s: %w", tag, err)
	}
	if !desc.MediaType.IsImage() {
		out.problem = denyProblem(sign.ReasonMalformed, fmt.Sprintf("the %s tag does not hold an image manifest", k))
		return out, nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		out.problem = denyProblem(sign.ReasonMalformed, fmt.Sprintf("the %s tag's manifest cannot be parsed (%s)", k, jsonErrorText(err)))
		return out, nil
	}
	if n := len(m.Layers); n > v.opts.limits.maxLayers {
		out.problem = denyProblem(sign.ReasonMalformed, fmt.Sprintf(
			"the %s tag lists %d layers, more than the limit of %d (cosign.WithMaxLayers); none was read", k, n, v.opts.limits.maxLayers))
		return out, nil
	}
	out.layers = m.Layers
	return out, nil
}

// read reads the payload of one layer, at most its declared size and never more
// than the payload limit. It returns the payload, or the problem; ctx's error when
// ctx ended.
func (v *Verifier) read(ctx context.Context, repo name.Repository, desc v1.Descriptor) ([]byte, *problem, error) {
	switch limit := v.opts.limits.maxPayload; {
	case desc.Size < 0:
		return nil, denyProblem(sign.ReasonMalformed, "its descriptor declares a negative size"), nil
	case desc.Size > limit:
		return nil, denyProblem(sign.ReasonMalformed, fmt.Sprintf(
			"its descriptor declares %d bytes, more than the limit of %d (cosign.WithMaxPayloadSize); it was not read", desc.Size, limit)), nil
	}
	l, err := v.puller.Layer(ctx, repo.Digest(desc.Digest.String()))
	if err != nil {
		p, err := v.readProblem(ctx, desc, err)
		return nil, p, err
	}
	rc, err := l.Compressed()
	if err != nil {
		p, err := v.readProblem(ctx, desc, err)
		return nil, p, err
	}
	defer rc.Close()
	buf := make([]byte, desc.Size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		p, err := v.readProblem(ctx, desc, err)
		return nil, p, err
	}
	// The body must end here; go-containerregistry checks the digest at its end.
	var one [1]byte
	if n, err := io.ReadFull(rc, one[:]); n > 0 {
		return nil, denyProblem(sign.ReasonMalformed, fmt.Sprintf(
			"the registry serves more than the %d bytes its descriptor declares; it was read no further", desc.Size)), nil
	} else if !errors.Is(err, io.EOF) {
		p, err := v.readProblem(ctx, desc, err)
		return nil, p, err
	}
	return buf, nil, nil
}

// readProblem describes why a layer could not be read, without the registry's
// words: they stay in the server's log.
func (v *Verifier) readProblem(ctx context.Context, desc v1.Descriptor, err error) (*problem, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	v.opts.log.DebugContext(ctx, "layer cannot be read", "digest", desc.Digest.String(), "error", truncate(err.Error(), 512))
	var te *transport.Error
	switch {
	case errors.Is(err, errBodyTooLarge):
		return denyProblem(sign.ReasonMalformed, "the registry serves more bytes than the limit; it was read no further"), nil
	case errors.As(err, &te):
		return &problem{code: sign.ReasonMalformed, msg: fmt.Sprintf("cannot be read: the registry answered HTTP %d", te.StatusCode)}, nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &problem{code: sign.ReasonMalformed, msg: fmt.Sprintf("cannot be read: the registry serves fewer than the %d bytes its descriptor declares", desc.Size)}, nil
	default:
		return &problem{code: sign.ReasonMalformed, msg: "cannot be read: its content does not match its digest, or the connection failed"}, nil
	}
}
