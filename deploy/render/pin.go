package render

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
)

// The ways pinning images fails; errors wrap one of them and name the image.
var (
	// ErrImageNotPinned: a [WithImage] mapping or a [WithImages] digest matches no
	// image of the objects (a typo, or a digest for another repository).
	ErrImageNotPinned = errors.New("pins no image of the objects")
	// ErrNoDigest: a mapping or digest without a digest (a zero name.Digest).
	ErrNoDigest = errors.New("no digest to pin to")
	// ErrImageConflict: two digests for one repository, or a mapping and a digest
	// that pin one image differently.
	ErrImageConflict = errors.New("two digests for one image")
)

// mapping is one [WithImage].
type mapping struct {
	written string
	digest  name.Digest
}

// pins is what [WithImages] and [WithImage] ask for.
type pins struct {
	mappings    []mapping
	digests     []name.Digest
	allowUnused bool
}

func (p pins) empty() bool { return len(p.mappings) == 0 && len(p.digests) == 0 }

// PinImages pins every image of objs whose repository is one of digests' (see
// [WithImages]), in place. An image that cannot be parsed is an error naming the
// object and field; so is a digest that pins nothing ([ErrImageNotPinned]).
func PinImages(objs []*unstructured.Unstructured, digests ...name.Digest) error {
	return pins{digests: digests}.apply(objs)
}

// target is where a mapping or a digest pins, and whether it did.
type target struct {
	what   string // how the caller wrote it, for errors
	repo   string // normalised repository it matches
	tag    string // mappings: the tag it matches, "" for any
	to     string // mappings: the image it writes
	toRepo string // mappings: the repository of to
	digest string
	used   bool
}

func (p pins) targets() (maps []*target, byRepo map[string]*target, err error) {
	var errs []error
	for _, m := range p.mappings {
		t := &target{what: fmt.Sprintf("WithImage(%q)", m.written), digest: m.digest.DigestStr(),
			to: m.digest.Name(), toRepo: m.digest.Context().Name()}
		if t.digest == "" {
			errs = append(errs, fmt.Errorf("render: %s: %w", t.what, ErrNoDigest))
			continue
		}
		if t.repo, t.tag, err = splitWritten(m.written); err != nil {
			errs = append(errs, fmt.Errorf("render: %s: %w", t.what, err))
			continue
		}
		maps = append(maps, t)
	}
	byRepo = map[string]*target{}
	for _, d := range p.digests {
		t := &target{what: fmt.Sprintf("WithImages(%q)", d.String()), repo: d.Context().Name(), digest: d.DigestStr()}
		if t.digest == "" {
			errs = append(errs, fmt.Errorf("render: %s: %w", t.what, ErrNoDigest))
			continue
		}
		if prev, ok := byRepo[t.repo]; ok && prev.digest != t.digest {
			errs = append(errs, fmt.Errorf("render: %s and %s: %w", prev.what, t.what, ErrImageConflict))
			continue
		}
		byRepo[t.repo] = t
	}
	return maps, byRepo, errors.Join(errs...)
}

// splitWritten reads a mapping's name: a repository with an optional tag.
func splitWritten(s string) (repo, tag string, err error) {
	if strings.Contains(s, "@") {
		return "", "", fmt.Errorf("%q names a digest; name the image as the manifests write it", s)
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return "", "", err
	}
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		tag = ref.Identifier()
	}
	return ref.Context().Name(), tag, nil
}

func (p pins) apply(objs []*unstructured.Unstructured) error {
	maps, byRepo, err := p.targets()
	if err != nil {
		return err
	}
	for _, obj := range objs {
		w, _ := deploy.Walk(obj)
		for i := range w.Images {
			if err := pin(&w.Images[i], maps, byRepo); err != nil {
				return err
			}
		}
	}
	if p.allowUnused {
		return nil
	}
	var errs []error
	for _, t := range maps {
		if !t.used {
			errs = append(errs, fmt.Errorf("render: %s: %w", t.what, ErrImageNotPinned))
		}
	}
	for _, d := range p.digests {
		if t := byRepo[d.Context().Name()]; t != nil && !t.used {
			t.used = true // once per repository
			errs = append(errs, fmt.Errorf("render: %s: %w", t.what, ErrImageNotPinned))
		}
	}
	return errors.Join(errs...)
}

// pin rewrites one image use: by the first mapping that matches it, then by the
// digest of its repository.
func pin(u *deploy.ImageUse, maps []*target, byRepo map[string]*target) error {
	if u.Kind == deploy.UnrecognisedImage || u.Image == "" {
		return nil // render pins what it can interpret; the gate refuses the rest
	}
	ref, err := name.ParseReference(u.Image)
	if err != nil {
		return fmt.Errorf("render: %s: %s: image %q: %w", u.Object, u.Path, u.Image, err)
	}
	repo, tag := ref.Context().Name(), ""
	if t, ok := ref.(name.Tag); ok {
		tag = t.TagStr()
	}
	var mapped *target
	for _, m := range maps {
		if m.repo == repo && (m.tag == "" || m.tag == tag) {
			mapped, m.used = m, true
			if err := u.SetImage(m.to); err != nil {
				return err
			}
			repo = m.toRepo
			break
		}
	}
	t, ok := byRepo[repo]
	if !ok {
		return nil
	}
	t.used = true
	if mapped != nil {
		if mapped.digest != t.digest {
			return fmt.Errorf("render: %s: %s: %s and %s: %w", u.Object, u.Path, mapped.what, t.what, ErrImageConflict)
		}
		return nil
	}
	return u.SetImage(repoAsWritten(u.Image) + "@" + t.digest)
}

// repoAsWritten strips the tag and digest from an image reference, keeping the
// repository as the manifest spells it.
func repoAsWritten(img string) string {
	if i := strings.Index(img, "@"); i >= 0 {
		img = img[:i]
	}
	if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
		img = img[:i]
	}
	return img
}
