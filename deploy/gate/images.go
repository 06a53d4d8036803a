package gate

import (
	"fmt"
	"maps"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/sign"
)

// containerLists are the keys whose values are lists of containers in a pod spec.
var containerLists = map[string]bool{"containers": true, "initContainers": true, "ephemeralContainers": true}

// use is one container of one object and the image it runs.
type use struct {
	object    deploy.ObjectRef
	container string
	image     string      // as the object writes it
	digest    name.Digest // when image is pinned; without its tag
	reason    *deploy.Reason
}

// Image is one container image that objects run.
type Image struct {
	// Object is the object that runs the image.
	Object deploy.ObjectRef
	// Container names the container (or init or ephemeral container).
	Container string
	// Image is the image reference as the object writes it.
	Image string
}

// Images lists every container image in objs: containers, init containers and
// ephemeral containers anywhere in an object, so pod templates of workloads, pods
// and custom resources that embed pod specs alike.
func Images(objs []*unstructured.Unstructured) []Image {
	var out []Image
	for _, obj := range objs {
		ref := deploy.RefOf(obj)
		walkContainers(obj.Object, func(c map[string]any) {
			img, _ := c["image"].(string)
			cname, _ := c["name"].(string)
			out = append(out, Image{Object: ref, Container: cname, Image: img})
		})
	}
	return out
}

// uses resolves the images of objs: pinned ones to their digest, the others to the
// reason they are refused.
func uses(objs []*unstructured.Unstructured) []use {
	imgs := Images(objs)
	out := make([]use, 0, len(imgs))
	for _, im := range imgs {
		u := use{object: im.Object, container: im.Container, image: im.Image}
		deny := func(code deploy.ReasonCode, msg string) {
			u.reason = &deploy.Reason{Reason: sign.Reason{Code: code, Message: msg}, Object: im.Object, Container: im.Container, Image: im.Image}
		}
		ref, err := name.ParseReference(im.Image)
		switch {
		case im.Image == "":
			deny(deploy.ReasonBadImage, "no image")
		case err != nil:
			deny(deploy.ReasonBadImage, fmt.Sprintf("cannot be parsed: %v", err))
		default:
			switch r := ref.(type) {
			case name.Digest:
				u.digest = r.Context().Digest(r.DigestStr())
			case name.Tag:
				deny(deploy.ReasonNotPinned, fmt.Sprintf("not pinned by digest (tag %q): pin it to the digest the build published", r.TagStr()))
			}
		}
		out = append(out, u)
	}
	return out
}

// walkContainers calls fn for every container map anywhere in v.
func walkContainers(v any, fn func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		// In key order, so reasons come out in the same order every time.
		for _, k := range slices.Sorted(maps.Keys(v)) {
			child := v[k]
			if list, ok := child.([]any); ok && containerLists[k] {
				for _, c := range list {
					if cm, ok := c.(map[string]any); ok {
						fn(cm)
					}
				}
				continue
			}
			walkContainers(child, fn)
		}
	case []any:
		for _, child := range v {
			walkContainers(child, fn)
		}
	}
}
