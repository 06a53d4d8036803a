package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/patch"
	"github.com/shipkit/shipkit/build/publish"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

const (
	osRelease = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	dpkgEntry = "Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nArchitecture: amd64\nSource: glibc\nVersion: %s\nDescription: GNU C Library: Shared libraries\n\n"
)

// predicateFunc makes the attestations of an image: patch.RebaseConfig.Predicates.
type predicateFunc = func(context.Context, name.Digest, patch.Pushed) ([]sign.Predicate, error)

// newPredicates returns what the main job attests per platform image: its SBOM
// (SPDX JSON, cataloged from the layers) and its vulnerability report (the SBOM
// matched against db).
func newPredicates(cat *sbom.Cataloger, db *vuln.DB) predicateFunc {
	return func(ctx context.Context, d name.Digest, pushed patch.Pushed) ([]sign.Predicate, error) {
		imgs, err := pushed.Images()
		if err != nil {
			return nil, err
		}
		var preds []sign.Predicate
		for _, img := range imgs {
			s, err := cat.Catalog(ctx, img)
			if err != nil {
				return nil, err
			}
			sp, err := sbom.Predicate(s, sbom.SPDXJSON)
			if err != nil {
				return nil, err
			}
			r, err := db.Scan(ctx, s)
			if err != nil {
				return nil, err
			}
			vp, err := sign.VulnPredicate(r)
			if err != nil {
				return nil, err
			}
			vp.Subject = s.Subject
			preds = append(preds, sp, vp)
		}
		return preds, nil
	}
}

// pushBase pushes a linux/amd64 Debian 12 base with libc6 at version under tag.
func pushBase(tag name.Tag, version string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		body string
	}{{"etc/os-release", osRelease}, {"var/lib/dpkg/status", fmt.Sprintf(dpkgEntry, version)}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON)
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	return remote.WriteIndex(tag, idx)
}

// buildApp builds the application (one file) on base and pushes it.
func buildApp(ctx context.Context, base name.Tag, repo name.Repository) (name.Digest, error) {
	dir, err := os.MkdirTemp("", "shipkit-patch-app-")
	if err != nil {
		return name.Digest{}, err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>shop</h1>\n"), 0o644); err != nil {
		return name.Digest{}, err
	}
	b, err := build.NewFiles([]build.Layer{{Name: "site", Files: []build.File{{Src: "index.html", Dst: "/srv/index.html"}}}},
		build.WithBase(build.RemoteBaseRef(base)), build.WithPlatforms("linux/amd64"),
		build.WithCreationTime(time.Unix(0, 0)))
	if err != nil {
		return name.Digest{}, err
	}
	idx, err := b.Build(ctx, build.Source{Dir: dir, Repository: "https://github.com/example/shop.git", Revision: "4c1d2e3"})
	if err != nil {
		return name.Digest{}, err
	}
	return publish.Index(ctx, idx, repo)
}

// signAndAttest signs d and attests its SBOM, vulnerability report and provenance,
// as the main job does after a build.
func signAndAttest(ctx context.Context, signer *cosign.Signer, d name.Digest,
	predicates predicateFunc) error {
	if err := signer.Sign(ctx, d, sign.WithRecursive()); err != nil {
		return err
	}
	idx, err := remote.Index(d, remote.WithContext(ctx))
	if err != nil {
		return err
	}
	preds, err := predicates(ctx, d, patch.Pushed{Index: idx})
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	prov := sign.ProvenanceFromAnnotations(im.Annotations)
	prov.BuilderID = "https://github.com/shipkit/shipkit/examples/patch"
	pp, err := prov.Predicate()
	if err != nil {
		return err
	}
	for _, p := range append(preds, pp) {
		if err := signer.Attest(ctx, d, p); err != nil {
			return err
		}
	}
	return nil
}
