// Package oci holds the go-containerregistry reading that more than one stage
// needs; it is not API.
package oci

import (
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Artifact is what a reference names in a registry: an image or an image index.
type Artifact struct {
	// Digest is the manifest's digest.
	Digest v1.Hash
	// Image is set when the reference names an image.
	Image v1.Image
	// Index is set when the reference names an image index.
	Index v1.ImageIndex
}

// Get reads what ref names from its registry, as an image or an image index by the
// manifest's media type. Errors are go-containerregistry's; callers name the
// reference.
func Get(ref name.Reference, opts ...remote.Option) (Artifact, error) {
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return Artifact{}, err
	}
	a := Artifact{Digest: desc.Digest}
	if desc.MediaType.IsIndex() {
		a.Index, err = desc.ImageIndex()
	} else {
		a.Image, err = desc.Image()
	}
	if err != nil {
		return Artifact{}, err
	}
	return a, nil
}
