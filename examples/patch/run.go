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
	"github.com/shipkit/shipkit/deploy"
	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/scan"
	scanfleet "github.com/shipkit/shipkit/scan/fleet"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// config is what the demo runs against.
type config struct {
	// Registry is the registry host (plain HTTP on loopback, e.g. the test bed's).
	Registry name.Registry
	// DB is a grype database root (scan/vulndb writes one) that knows
	// CVE-2023-4911 for glibc on Debian 12.
	DB string
	// Out receives the story.
	Out io.Writer
}

// outcome is what the demo found, for the test.
type outcome struct {
	Before, After *scanfleet.Report
	Stale         []patch.Image
	Patched       []*patch.Patched
	Gated         []*sign.Verified
	Current       *patch.Report
}

const (
	osRelease = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	dpkgEntry = "Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nArchitecture: amd64\nSource: glibc\nVersion: %s\nDescription: GNU C Library: Shared libraries\n\n"
)

// run: a hardened base (Debian 12 with libc6 2.36-9+deb12u2, vulnerable to
// CVE-2023-4911) carries an application; the fleet report shows the workload
// vulnerable; the base gets a patched layer (libc6 2.36-9+deb12u3) under the same
// tag; patch.Check finds the application stale; patch.Rebase verifies it (signed
// by the build job's key, with its SBOM and provenance: an image that does not
// verify is refused, never re-signed), moves it onto the new base, pushes, signs
// and attests it, the provenance's source taken from the verified one; the gate (cosign verifier with the
// vulnerability rule) admits it, the caller would roll it out with deploy/rollout
// as a canary; the next fleet report shows it current and clean.
func run(ctx context.Context, cfg config) (*outcome, error) {
	out := &outcome{}
	say := func(format string, args ...any) { fmt.Fprintf(cfg.Out, format+"\n", args...) }

	kp, err := cosign.GenerateKeyPair(nil)
	if err != nil {
		return nil, err
	}
	key, err := cosign.LoadPrivateKey(kp.PrivatePEM, nil)
	if err != nil {
		return nil, err
	}
	signer, err := cosign.NewSigner(key)
	if err != nil {
		return nil, err
	}
	db, err := vuln.Open(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	cat := sbom.New()
	predicates := func(ctx context.Context, d name.Digest, idx v1.ImageIndex) ([]sign.Predicate, error) {
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, err
		}
		var preds []sign.Predicate
		for _, desc := range im.Manifests {
			img, err := idx.Image(desc.Digest)
			if err != nil {
				return nil, err
			}
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

	// The catalog's base and an application built on it, signed and attested.
	baseTag := cfg.Registry.Repo("catalog/debian").Tag("12")
	if err := pushBase(baseTag, "2.36-9+deb12u2"); err != nil {
		return nil, err
	}
	say("base %s: libc6 2.36-9+deb12u2", baseTag)
	app, err := buildApp(ctx, baseTag, cfg.Registry.Repo("shop/web"))
	if err != nil {
		return nil, err
	}
	if err := signAndAttest(ctx, signer, app, predicates); err != nil {
		return nil, err
	}
	say("built %s", app)

	// What runs: the application in a Deployment (a deploy/fleet inventory; here
	// written by hand instead of read from clusters).
	inventory := func(d name.Digest) *deployfleet.Inventory {
		return &deployfleet.Inventory{
			Clusters: []deployfleet.ClusterInventory{{Name: "prod"}},
			Images: []deployfleet.Image{{Digest: d.String(), Uses: []deployfleet.Use{{
				Cluster: "prod", Workload: deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "shop", Name: "web"},
				Container: "web", Kind: deploy.ContainerImage, Running: true, Pods: 3, Image: d.String(),
			}}}},
		}
	}
	verifier, err := cosign.NewVerifier(sign.Policy{
		TrustedKeys:        []sign.TrustedKey{key.TrustedKey("shipkit-demo")},
		RequiredPredicates: []string{sign.PredicateSPDX, sign.PredicateSLSAProvenance},
	})
	if err != nil {
		return nil, err
	}
	opts := scanfleet.Options{Verifier: verifier, Scanner: db}
	if out.Before, err = scanfleet.Rescan(ctx, inventory(app), opts); err != nil {
		return nil, err
	}
	for _, a := range out.Before.Advisories {
		for _, af := range a.Affected {
			say("fleet report: %s (%s) in %s %s@%s, fixed in %v, running in %v", a.ID, a.Severity, af.Image, af.Package, af.Version, af.FixedIn, af.Workloads)
		}
	}

	// The catalog patches its base: a new layer, the same tag.
	if err := pushBase(baseTag, "2.36-9+deb12u3"); err != nil {
		return nil, err
	}
	say("base %s patched: libc6 2.36-9+deb12u3", baseTag)

	check, err := patch.Check(ctx, []name.Digest{app}, []string{baseTag.String()}, patch.Options{})
	if err != nil {
		return nil, err
	}
	gate, err := cosign.NewVerifier(sign.Policy{
		TrustedKeys:        []sign.TrustedKey{key.TrustedKey("shipkit-demo")},
		RequiredPredicates: []string{sign.PredicateSPDX, sign.PredicateVuln, sign.PredicateSLSAProvenance},
		Conditions:         []sign.Condition{sign.VulnRule{FailOn: report.High}},
	})
	if err != nil {
		return nil, err
	}
	var current []name.Digest
	for _, im := range check.Images {
		say("%s: %s (built on %s, tag now %s)", im.Ref, im.Status, short(im.Built), short(im.Current))
		if im.Status != patch.Stale {
			current = append(current, im.Ref)
			continue
		}
		out.Stale = append(out.Stale, im)
		p, err := patch.Rebase(ctx, im, patch.RebaseConfig{Verifier: verifier, Signer: signer, Attester: signer,
			Predicates: predicates, BuilderID: "https://github.com/shipkit/shipkit/examples/patch"}, patch.Options{})
		if err != nil {
			return nil, err
		}
		out.Patched = append(out.Patched, p)
		say("verified and rebased %s -> %s, signed, attested %v", im.Ref.DigestStr()[:19], p.New.DigestStr()[:19], p.Attested)
		v, err := gate.Verify(ctx, p.New)
		if err != nil {
			return nil, fmt.Errorf("gate %s: %w", p.New, err)
		}
		out.Gated = append(out.Gated, v)
		say("gate: %s admitted (signed by %v, no finding at or above high); roll it out with deploy/rollout", p.New.DigestStr()[:19], v.Signers)
		current = append(current, p.New)
	}

	// The next report: the rolled-out digest, against the previous report.
	opts.Previous = out.Before
	if out.After, err = scanfleet.Rescan(ctx, inventory(current[0]), opts); err != nil {
		return nil, err
	}
	if out.Current, err = patch.Check(ctx, current, []string{baseTag.String()}, patch.Options{}); err != nil {
		return nil, err
	}
	say("next fleet report: %d advisories; %s is %s", len(out.After.Advisories), current[0].DigestStr()[:19], out.Current.Images[0].Status)
	if d := out.After.Diff; d != nil {
		for _, c := range d.Fixed {
			say("fixed since the last report: %s in %s@%s (%v)", c.Advisory, c.Package, c.Version, c.Workloads)
		}
	}
	return out, nil
}

func short(h v1.Hash) string {
	if h.Hex == "" {
		return "-"
	}
	return h.String()[:19]
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
	predicates func(context.Context, name.Digest, v1.ImageIndex) ([]sign.Predicate, error)) error {
	if err := signer.Sign(ctx, d, sign.WithRecursive()); err != nil {
		return err
	}
	idx, err := remote.Index(d, remote.WithContext(ctx))
	if err != nil {
		return err
	}
	preds, err := predicates(ctx, d, idx)
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

var _ scan.Scanner = (*vuln.DB)(nil)
