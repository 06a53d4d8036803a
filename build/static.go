package build

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipkit/shipkit/build/internal/static"
)

type staticBase struct{}

// Static is the default base: one layer with what a static binary that talks HTTPS
// and handles time zones needs, like distroless static: Debian's CA bundle at
// /etc/ssl/certs/ca-certificates.crt (Mozilla's roots, from the ca-certificates
// package), the zoneinfo tree of the tzdata package at /usr/share/zoneinfo, both
// packages' copyright files under /usr/share/doc, /etc/passwd and /etc/group with
// root, nobody and the nonroot user 65532 ([DefaultUser]) whose home is
// /home/nonroot, /etc/nsswitch.conf, and /tmp. The config sets PATH and
// SSL_CERT_FILE.
//
// The files are vendored in shipkit (build/internal/static, with the package
// versions) and the image is written in process, without network: the layer is the
// same on every machine, dated at the Unix epoch, entries sorted, owned by root
// (the nonroot home by 65532), and one layer serves every platform. It records no
// base name, like [Scratch]: [Rebase] an image built on it with [WithOldBase].
func Static() Base { return staticBase{} }

func (staticBase) Load(context.Context) (*BaseImage, error) {
	l, err := staticLayer()
	if err != nil {
		return nil, err
	}
	return &BaseImage{label: "static", forPlatform: func(p v1.Platform) (v1.Image, error) { return staticImage(l, p) }}, nil
}

// staticLayer is the layer of [Static], written once per process from the embedded
// files: an immutable value, not state.
var staticLayer = sync.OnceValues(newStaticLayer)

// newStaticLayer writes the layer of [Static] from the embedded files.
func newStaticLayer() (*staticLayerValue, error) {
	files, err := static.Files()
	if err != nil {
		return nil, fmt.Errorf("base static: %w", err)
	}
	versions, err := static.Versions()
	if err != nil {
		return nil, fmt.Errorf("base static: %w", err)
	}
	entries := make([]entry, len(files))
	for i, f := range files {
		entries[i] = entry{name: f.Path, mode: f.Mode, data: f.Data, link: f.Link, dir: f.Dir, uid: f.UID, gid: f.GID}
	}
	l, err := reproducibleLayer(entries, time.Unix(0, 0).UTC(), types.OCILayer)
	if err != nil {
		return nil, fmt.Errorf("base static: %w", err)
	}
	return &staticLayerValue{layer: l, createdBy: "shipkit build.Static: " + strings.Join(versions, ", ")}, nil
}

type staticLayerValue struct {
	layer     v1.Layer
	createdBy string
}

// staticEnv is the environment of [Static]'s config.
var staticEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"SSL_CERT_FILE=" + static.CertFile,
}

// staticImage is [Static]'s image for platform p: the one layer, and a config that
// differs between platforms only in the platform.
func staticImage(l *staticLayerValue, p v1.Platform) (v1.Image, error) {
	epoch := v1.Time{Time: time.Unix(0, 0).UTC()}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{
		Layer:     l.layer,
		MediaType: types.OCILayer,
		History:   v1.History{Author: "shipkit", Created: epoch, CreatedBy: l.createdBy},
	})
	if err != nil {
		return nil, fmt.Errorf("base static for %s: %w", p, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("base static for %s: %w", p, err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	cf.Created = epoch
	cf.Config.Env = append([]string(nil), staticEnv...)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return nil, fmt.Errorf("base static for %s: %w", p, err)
	}
	return img, nil
}
