package cosign_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipkit/shipkit/internal/testbed"
	"github.com/shipkit/shipkit/sign/cosign"
)

// benchImages pushes n images, each signed with an SBOM, a vulnerability report and
// provenance attested, to an in-process registry: all in one repository, or each
// in a repository of its own when repoEach is set (as go run ./hack/bench sign
// pushes them).
func benchImages(b *testing.B, n int, repoEach bool, opts ...cosign.Option) []name.Digest {
	b.Helper()
	host := newReferrersRegistry(b)
	ds := make([]name.Digest, n)
	for i := range ds {
		repo := "team/app"
		if repoEach {
			repo = fmt.Sprintf("team/app-%d", i)
		}
		ds[i] = pushImage(b, host, repo, fmt.Sprint(i))
		signAndAttest(b, trusted, ds[i], sourceRepo, opts...)
	}
	return ds
}

// layouts are the two registry layouts the benchmarks sign in: sigstore bundles
// in OCI 1.1 referrers (the in-process registry has the referrers API) and cosign
// v2's .sig/.att tags.
var layouts = []struct {
	name string
	opt  cosign.Option
}{{"bundle", cosign.WithFormat(cosign.FormatBundle)}, {"legacy", cosign.WithFormat(cosign.FormatLegacy)}}

// BenchmarkVerify measures one image (signature and 3 attestations) warm (the
// verdict cached) and cold (every verification reads the registry and checks every
// signature), and 100 images verified concurrently, cold, by a new verifier each
// round (as go run ./hack/bench sign does), in each layout. A verification reads
// both layouts whatever the image holds: the legacy figures include the (empty)
// referrers list, the bundle figures the (missing) legacy tags.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	policy := fullPolicy(trusted.trustedKey())
	b.Run("warm", func(b *testing.B) {
		d := benchImages(b, 1, false)[0]
		v := newVerifier(b, policy)
		if _, err := v.Verify(ctx, d); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			if _, err := v.Verify(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, l := range layouts {
		b.Run("cold/"+l.name, func(b *testing.B) {
			d := benchImages(b, 1, false, l.opt)[0]
			ct := &countingTransport{base: remote.DefaultTransport}
			v := newVerifier(b, policy, cosign.WithCache(nil), cosign.WithTransport(ct))
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(ctx, d); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ct.n.Load())/float64(b.N), "req/op")
		})
		// 100 images verified concurrently by one verifier, cold: in one repository,
		// and in 100 (one authentication and ping per repository, which the verifier
		// keeps for its life; the verifier is made anew for every round here, so each
		// round pays them). req/op counts the HTTP requests to the registry.
		for _, c := range []struct {
			name     string
			repoEach bool
		}{{"cold-100-concurrent", false}, {"cold-100-repos-concurrent", true}} {
			b.Run(c.name+"/"+l.name, func(b *testing.B) {
				ds := benchImages(b, 100, c.repoEach, l.opt)
				ct := &countingTransport{base: remote.DefaultTransport}
				b.ResetTimer()
				for b.Loop() {
					v := newVerifier(b, policy, cosign.WithCache(nil), cosign.WithTransport(ct))
					verifyAll(b, v, ds)
				}
				b.ReportMetric(float64(ct.n.Load())/float64(b.N), "req/op")
			})
		}
	}
}

// verifyAll verifies every image of ds at once with v.
func verifyAll(b *testing.B, v *cosign.Verifier, ds []name.Digest) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(ds))
	for i, d := range ds {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = v.Verify(context.Background(), d) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCosignCLI measures the cosign CLI verifying the same image (signature
// and the 3 attestations: cosign verify, then cosign verify-attestation per type),
// each run a cold start of the CLI, as an admission script would run it: cosign
// v2.6.5 on the legacy layout, cosign v3.1.3 on bundles.
func BenchmarkCosignCLI(b *testing.B) {
	for _, c := range []struct {
		name, version string
		opt           cosign.Option
	}{{"v2-legacy", "v2.6.5", layouts[1].opt}, {"v3-bundle", "v3.1.3", layouts[0].opt}} {
		b.Run(c.name, func(b *testing.B) {
			bin := testbed.ToolPath("cosign", c.version)
			if _, err := os.Stat(bin); err != nil {
				b.Skipf("cosign CLI not installed at %s", bin)
			}
			d := benchImages(b, 1, false, c.opt)[0]
			dir := b.TempDir()
			_, pubPath, err := trusted.pair.WriteFiles(dir)
			if err != nil {
				b.Fatal(err)
			}
			runs := [][]string{{"verify", "--key", pubPath, "--insecure-ignore-tlog", d.String()}}
			for _, typ := range []string{"spdxjson", "vuln", "slsaprovenance1"} {
				runs = append(runs, []string{"verify-attestation", "--key", pubPath, "--insecure-ignore-tlog", "--type", typ, d.String()})
			}
			env := append(os.Environ(), "TUF_ROOT="+filepath.Join(dir, "tuf"), "HOME="+dir, "DOCKER_CONFIG="+dir)
			for b.Loop() {
				for _, args := range runs {
					cmd := exec.CommandContext(context.Background(), bin, args...)
					cmd.Env = env
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("cosign %v: %v\n%s", args, err, out)
					}
				}
			}
		})
	}
}

// BenchmarkVerifyCertificate measures one image signed and attested with a
// certificate (root → intermediate → leaf), verified by identity without a cache:
// the chain and identity checks on top of BenchmarkVerify/cold.
func BenchmarkVerifyCertificate(b *testing.B) {
	ctx := context.Background()
	ours := newPKI(b, "ours")
	key, _ := certKey(b, ours, trusted, goodLeaf)
	host := newRegistry(b)
	d := pushImage(b, host, "team/app", "v1")
	signAndAttestWith(b, key, d)
	v := newVerifier(b, certPolicy(ours.identity()), cosign.WithCache(nil))
	for b.Loop() {
		if _, err := v.Verify(ctx, d); err != nil {
			b.Fatal(err)
		}
	}
}
