package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/build/patch"
	"github.com/shipkit/shipkit/deploy"
	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/deploy/gate"
	"github.com/shipkit/shipkit/deploy/rollout"
	scanfleet "github.com/shipkit/shipkit/scan/fleet"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// config is what the loop runs against.
type config struct {
	// Registry is the registry host (plain HTTP on loopback, e.g. the test bed's).
	Registry name.Registry
	// DB is a grype database root (scan/vulndb writes one) that knows
	// CVE-2023-4911 for glibc on Debian 12.
	DB string
	// Clusters run the application. The patched image reaches Clusters[0] as a
	// canary (deploy/rollout), the others by a plain apply.
	Clusters []deployfleet.Target
	// Out receives the story.
	Out io.Writer
}

// outcome is what the loop found, for the test.
type outcome struct {
	// App is the application as first built and deployed.
	App name.Digest
	// InventoryBefore and InventoryAfter are read from the clusters before the
	// patch and after the rollout.
	InventoryBefore, InventoryAfter *deployfleet.Inventory
	Before, After                   *scanfleet.Report
	// Checked is build/patch's check of the running images once the base was patched.
	Checked  *patch.Report
	Stale    []patch.Image
	Patched  *patch.Patched
	Decision *deploy.Decision
	// Rollout is the canary's result in Clusters[0].
	Rollout *rollout.Result
	// Current is the check of the images running after the rollout.
	Current *patch.Report
}

// run closes the loop on the clusters: a hardened base (Debian 12 with libc6
// 2.36-9+deb12u2, vulnerable to CVE-2023-4911) carries an application, signed and
// attested as the main job does, and deployed by digest to every cluster; the
// inventory read from the clusters and the fleet report from the verified SBOM
// attestations (no layer pulled) show its workloads vulnerable; the base gets a
// patched layer (libc6 2.36-9+deb12u3) under the same tag; patch.Check finds the
// running image stale; patch.Rebase verifies it (an image that does not verify is
// refused, never re-signed), moves it onto the new base, pushes, signs and attests
// it; the gate (deploy/gate: cosign verifier, required attestations, no finding at
// or above high) admits the new objects; deploy/rollout rolls it out as a canary
// in the first cluster, a plain apply in the others; the next inventory and fleet
// report show every workload current and clean, and the CVE among the fixed.
func run(ctx context.Context, cfg config) (*outcome, error) {
	if len(cfg.Clusters) == 0 {
		return nil, fmt.Errorf("no clusters to run the application on")
	}
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
	predicates := newPredicates(sbom.New(), db)

	// The catalog's base and an application built on it, signed and attested.
	baseTag := cfg.Registry.Repo("catalog/debian").Tag("12")
	if err := pushBase(baseTag, "2.36-9+deb12u2"); err != nil {
		return nil, err
	}
	say("base %s: libc6 2.36-9+deb12u2", baseTag)
	if out.App, err = buildApp(ctx, baseTag, cfg.Registry.Repo("shop/web")); err != nil {
		return nil, err
	}
	if err := signAndAttest(ctx, signer, out.App, predicates); err != nil {
		return nil, err
	}
	say("built, signed and attested %s", out.App)

	// Deployed by digest to every cluster (before anyone knew of the CVE).
	objs, err := objects(out.App)
	if err != nil {
		return nil, err
	}
	for _, c := range cfg.Clusters {
		cs, err := applyAll(ctx, c.Config, objs, false)
		if err != nil {
			return nil, fmt.Errorf("deploy to %s: %w", c.Name, err)
		}
		if err := waitRunning(ctx, c.Config, out.App.String(), replicasTotal); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		say("deployed to %s: %s; %d pods running", c.Name, cs.Summary(), replicasTotal)
	}

	// What runs, read from the clusters, and the fleet report from attestations.
	verifier, err := cosign.NewVerifier(sign.Policy{
		TrustedKeys:        []sign.TrustedKey{key.TrustedKey("shipkit-demo")},
		RequiredPredicates: []string{sign.PredicateSPDX, sign.PredicateSLSAProvenance},
	})
	if err != nil {
		return nil, err
	}
	opts := scanfleet.Options{Verifier: verifier, Scanner: db}
	if out.InventoryBefore, out.Before, err = inventoryAndReport(ctx, cfg, opts); err != nil {
		return nil, err
	}
	sayReport(say, "fleet report", out.Before)

	// The catalog patches its base: a new layer, the same tag.
	if err := pushBase(baseTag, "2.36-9+deb12u3"); err != nil {
		return nil, err
	}
	say("base %s patched: libc6 2.36-9+deb12u3", baseTag)
	if out.Checked, err = patch.Check(ctx, digests(out.InventoryBefore), []string{baseTag.String()}, patch.Options{}); err != nil {
		return nil, err
	}
	for _, im := range out.Checked.Images {
		say("%s: %s (built on %s, tag now %s), in %s", short(im.Ref), im.Status, shortHash(im.Built), shortHash(im.Current),
			uses(out.InventoryBefore, im.Ref))
		if im.Status == patch.Stale {
			out.Stale = append(out.Stale, im)
		}
	}
	if len(out.Stale) != 1 || out.Stale[0].Ref.String() != out.App.String() {
		return out, fmt.Errorf("want the application stale, and it alone: %d stale images", len(out.Stale))
	}
	out.Patched, err = patch.Rebase(ctx, out.Stale[0], patch.RebaseConfig{Verifier: verifier, Signer: signer, Attester: signer,
		Predicates: predicates, BuilderID: "https://github.com/shipkit/shipkit/examples/patch"}, patch.Options{})
	if err != nil {
		return out, err
	}
	next := out.Patched.New
	say("verified and rebased %s -> %s, signed, attested %v", short(out.App), short(next), out.Patched.Attested)

	// The gate judges the next release's objects, as the main job's gate does.
	objs, err = objects(next)
	if err != nil {
		return out, err
	}
	g, err := gate.New(gate.WithVerifier(verifier),
		gate.RequireAttestations(sign.PredicateSPDX, sign.PredicateVuln, sign.PredicateSLSAProvenance),
		gate.FailOn(report.High),
		gate.WithRegistries(gate.Registries{Insecure: []string{cfg.Registry.RegistryStr()}}))
	if err != nil {
		return out, err
	}
	if out.Decision, err = g.Check(ctx, objs); err != nil {
		return out, err
	}
	if err := out.Decision.Err(); err != nil {
		return out, fmt.Errorf("gate: %w", err)
	}
	say("gate: %s admitted (signed by the build key; SBOM, vulnerability report, provenance; nothing at or above high)", short(next))

	// Rolled out: a canary in the first cluster, a plain apply in the others.
	for i, c := range cfg.Clusters {
		start := time.Now()
		if i == 0 {
			if out.Rollout, err = canary(ctx, c.Config, objs); err != nil {
				return out, fmt.Errorf("%s: %w", c.Name, err)
			}
		} else if _, err := applyAll(ctx, c.Config, objs, false); err != nil {
			return out, fmt.Errorf("deploy to %s: %w", c.Name, err)
		}
		if err := waitRunning(ctx, c.Config, next.String(), replicasTotal); err != nil {
			return out, fmt.Errorf("%s: %w", c.Name, err)
		}
		how := "applied"
		if i == 0 {
			how = fmt.Sprintf("canary 25%% -> 50%% -> 100%%, %s", out.Rollout.Phase)
		}
		say("rolled out to %s: %s in %s; every pod runs %s", c.Name, how, time.Since(start).Round(time.Millisecond), short(next))
	}

	// The next inventory and report, against the previous report.
	opts.Previous = out.Before
	if out.InventoryAfter, out.After, err = inventoryAndReport(ctx, cfg, opts); err != nil {
		return out, err
	}
	if out.Current, err = patch.Check(ctx, digests(out.InventoryAfter), []string{baseTag.String()}, patch.Options{}); err != nil {
		return out, err
	}
	for _, im := range out.Current.Images {
		say("%s: %s, in %s", short(im.Ref), im.Status, uses(out.InventoryAfter, im.Ref))
	}
	sayReport(say, "next fleet report", out.After)
	if d := out.After.Diff; d != nil {
		for _, c := range d.Fixed {
			say("fixed since the last report: %s in %s@%s (%v)", c.Advisory, c.Package, c.Version, c.Workloads)
		}
	}
	return out, nil
}

// inventoryAndReport reads the clusters (every one must be readable) and rescans
// their images from attestations.
func inventoryAndReport(ctx context.Context, cfg config, opts scanfleet.Options) (*deployfleet.Inventory, *scanfleet.Report, error) {
	inv, err := deployfleet.TakeInventory(ctx, cfg.Clusters, deployfleet.InventoryOptions{})
	if err != nil {
		return nil, nil, err
	}
	if err := inv.Err(); err != nil {
		return nil, nil, fmt.Errorf("inventory: %w", err)
	}
	if len(inv.Unresolved) > 0 {
		return nil, nil, fmt.Errorf("inventory: %d images not resolved, first %s: %s", len(inv.Unresolved), inv.Unresolved[0].Image, inv.Unresolved[0].Reason)
	}
	r, err := scanfleet.Rescan(ctx, inv, opts)
	return inv, r, err
}

// sayReport tells a fleet report's advisories, or that it has none.
func sayReport(say func(string, ...any), what string, r *scanfleet.Report) {
	scanned := 0
	for _, im := range r.Images {
		if im.Status == scanfleet.Scanned {
			scanned++
		}
	}
	say("%s: %d images, %d scanned from verified SBOMs, %d advisories", what, len(r.Images), scanned, len(r.Advisories))
	for _, a := range r.Advisories {
		for _, af := range a.Affected {
			say("  %s (%s) in %s %s@%s, fixed in %v, in %v", a.ID, a.Severity, short(parseDigest(af.Image)), af.Package, af.Version, af.FixedIn, af.Workloads)
		}
	}
}

// digests are the inventory's images.
func digests(inv *deployfleet.Inventory) []name.Digest {
	var out []name.Digest
	for _, im := range inv.Images {
		if d, err := im.Ref(); err == nil {
			out = append(out, d)
		}
	}
	return out
}

// uses says where the inventory has d running: cluster/namespace/Kind/name/container.
func uses(inv *deployfleet.Inventory, d name.Digest) string {
	var out []string
	for _, im := range inv.Images {
		if im.Digest != d.String() {
			continue
		}
		for _, u := range im.Uses {
			if u.Running {
				out = append(out, fmt.Sprintf("%s/%s/%s/%s/%s (%d pods)", u.Cluster, u.Workload.Namespace, u.Workload.Kind, u.Workload.Name, u.Container, u.Pods))
			}
		}
	}
	return strings.Join(out, ", ")
}

// parseDigest parses an image by digest as a report names it (zero when it does not parse).
func parseDigest(s string) name.Digest {
	d, _ := name.NewDigest(s)
	return d
}

// short abbreviates an image by digest to repository@sha256:<12 hex>.
func short(d name.Digest) string {
	s := d.DigestStr()
	if len(s) > len("sha256:")+12 {
		s = s[:len("sha256:")+12]
	}
	return d.Context().RepositoryStr() + "@" + s
}

func shortHash(h v1.Hash) string {
	if h.Hex == "" {
		return "-"
	}
	return h.String()[:19]
}
