// Command patch shows a hardened base's patch reaching a running workload:
//
//	go run ./examples/patch
//
// It serves a registry in process, writes an offline vulnerability database that
// knows CVE-2023-4911 (glibc on Debian 12), and then: a Debian 12 base (libc6
// 2.36-9+deb12u2) carries an application, signed and attested as the main job
// does; the fleet report (scan/fleet, from the verified SBOM attestation, no layer
// pulled) shows the workload vulnerable; the catalog pushes a patched base (libc6
// 2.36-9+deb12u3) under the same tag; build/patch finds the application stale,
// verifies it against the build job's key (an image that does not verify is
// refused, never re-signed), rebases it onto the new base, pushes it by digest, signs it and attests its SBOM,
// its vulnerability report and a provenance recording the rebase; the gate (cosign
// verifier with the vulnerability rule) admits the new digest, which deploy/rollout
// would then roll out as a canary; the next fleet report shows it current and
// clean, and the CVE among the fixed.
//
// The exit code is 0 when the loop closed, 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shipkit/shipkit/internal/testbed/registry"
	"github.com/shipkit/shipkit/internal/testbed/vulndb"
)

func main() {
	if err := demo(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "patch:", err)
		os.Exit(1)
	}
}

func demo(ctx context.Context) error {
	host, stop, err := registry.NewInProcess()
	if err != nil {
		return err
	}
	defer stop()
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "shipkit-patch-db-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := vulndb.Write(ctx, dir, vulndb.Fixtures())
	if err != nil {
		return err
	}
	out, err := run(ctx, config{Registry: reg, DB: db.RootDir, Out: os.Stdout})
	if err != nil {
		return err
	}
	if len(out.After.Advisories) != 0 || len(out.Patched) == 0 {
		return fmt.Errorf("the loop did not close: %d advisories left, %d images patched", len(out.After.Advisories), len(out.Patched))
	}
	return nil
}
