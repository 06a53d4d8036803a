package gate

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/sign"
)

// use is one image use of the objects (see deploy.Walk), resolved: a pinned image
// from an allowed registry to its digest, any other to the reason it is refused.
type use struct {
	object    deploy.ObjectRef
	kind      deploy.ImageKind
	path      string // field path of the image
	container string // for a container image
	image     string // as the object writes it
	digest    name.Digest
	reason    *deploy.Reason
}

// uses resolves the image uses of objs: containers, image volumes and the images
// deploy.Walk cannot interpret, which are refused.
func (g *Gate) uses(objs []*unstructured.Unstructured) []use {
	imgs := deploy.Images(objs)
	out := make([]use, 0, len(imgs))
	for _, im := range imgs {
		u := use{object: im.Object, kind: im.Kind, path: im.Path, image: im.Image}
		if im.Kind == deploy.ContainerImage {
			u.container = im.Name
		}
		deny := func(code deploy.ReasonCode, msg string) {
			r := u.deny(sign.Reason{Code: code, Message: msg})
			u.reason = &r
		}
		ref, err := name.ParseReference(im.Image)
		switch {
		case im.Kind == deploy.UnrecognisedImage:
			msg := "looks like an image where the gate cannot tell what runs it (not a pod spec's container or image volume, " +
				"nor a container of a workload resource deploy.Walk knows), so it cannot be verified"
			if im.Note != "" {
				msg = im.Note
			}
			deny(deploy.ReasonUnrecognisedImage, msg)
		case im.Image == "":
			deny(deploy.ReasonBadImage, "no image")
		case err != nil:
			deny(deploy.ReasonBadImage, fmt.Sprintf("cannot be parsed: %v", err))
		default:
			switch r := ref.(type) {
			case name.Digest:
				u.digest = r.Context().Digest(r.DigestStr())
				if code, msg := g.checkRegistry(r.Context().Registry); code != "" {
					deny(code, msg)
				}
			case name.Tag:
				deny(deploy.ReasonNotPinned, fmt.Sprintf("not pinned by digest (tag %q): pin it to the digest the build published", r.TagStr()))
			}
		}
		out = append(out, u)
	}
	return out
}

// deny returns r as a reason about u. The message of a reason about an image
// volume, or an image the walk did not recognise, starts with its field path.
func (u use) deny(r sign.Reason) deploy.Reason {
	if u.kind != deploy.ContainerImage {
		r.Message = u.path + ": " + r.Message
	}
	return deploy.Reason{Reason: r, Object: u.object, Container: u.container, Image: u.image}
}

// checkRegistry returns the reason the gate refuses to read reg, or "": the
// allow-list's, or without one, plain HTTP when the verifier would read it.
func (g *Gate) checkRegistry(reg name.Registry) (deploy.ReasonCode, string) {
	switch {
	case g.registries != nil:
		return g.registries.check(reg)
	case g.verifier != nil && reg.Scheme() == "http":
		return ReasonInsecureRegistry, fmt.Sprintf("registry %s would be read over plain HTTP (a localhost, loopback or private address): "+
			"the gate reads plain HTTP only from the registries listed in WithRegistries' Registries.Insecure", strings.ToLower(reg.RegistryStr()))
	}
	return "", ""
}
