package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

// cosignVersion is the cosign CLI the sign scenario compares with (hack/testbed.sh
// installs it for the interoperability tests).
const cosignVersion = "v2.6.5"

type signConfig struct {
	rounds, images, cliJobs int
	cosign                  string
}

// signCmd compares verifying images (a signature and 3 attestations: SBOM,
// vulnerability report, SLSA provenance) with shipkit's sign/cosign in process and
// with the cosign CLI (cosign verify, then cosign verify-attestation per type), and
// signing and attesting one image both ways.
func signCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	cfg := signConfig{}
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds of every scenario")
	fs.IntVar(&cfg.images, "images", 100, "images verified concurrently")
	fs.IntVar(&cfg.cliJobs, "cli-jobs", 2, "cosign CLI processes run at once for the many-images scenario")
	fs.StringVar(&cfg.cosign, "cosign", defaultTool("cosign", cosignVersion), "path of the cosign binary (hack/testbed.sh installs it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return runSign(ctx, cfg, out)
}

// signBench holds what the rounds share: the registry, the key, the signed images.
type signBench struct {
	cfg      signConfig
	host     string
	key      *cosign.PrivateKey
	pub      sign.TrustedKey
	dir      string
	env      []string
	images   []name.Digest
	preds    []sign.Predicate
	password []byte
}

func runSign(ctx context.Context, cfg signConfig, out io.Writer) error {
	if _, err := os.Stat(cfg.cosign); err != nil {
		return fmt.Errorf("cosign not found at %s (run hack/testbed.sh or pass -cosign): %w", cfg.cosign, err)
	}
	reg, err := startRegistry(ctx)
	if err != nil {
		return fmt.Errorf("starting the registry: %w", err)
	}
	defer reg.close()
	dir, err := os.MkdirTemp("", "shipkit-bench-sign-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := newSignBench(ctx, cfg, reg.host, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d images on %s, each signed with an SBOM, a vulnerability report and SLSA provenance attested\n", len(b.images), reg.host)

	type scenario struct {
		name, goal    string
		shipkit, peer func(ctx context.Context, round int) (time.Duration, error)
	}
	scenarios := []scenario{
		{"verify 1 image, warm", "≤ 50 ms", b.verifyWarm, b.cliVerifyOne},
		{"verify 1 image, cold", "", b.verifyCold, b.cliVerifyOne},
		{fmt.Sprintf("verify %d images", len(b.images)), "≤ 1 s", b.verifyMany, b.cliVerifyMany},
		{"load key, sign + 3 attestations", "", b.signOne, b.cliSignOne},
	}
	results := map[string][2][]time.Duration{}
	for r := range cfg.rounds {
		for _, sc := range scenarios {
			tools := []func(context.Context, int) (time.Duration, error){sc.shipkit, sc.peer}
			names := []string{"shipkit", "cosign"}
			first := r % 2 // alternate which tool runs first
			res := results[sc.name]
			for i := range 2 {
				k := (first + i) % 2
				d, err := tools[k](ctx, r)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", sc.name, names[k], err)
				}
				res[k] = append(res[k], d)
				fmt.Fprintf(out, "  round %d  %-34s %-8s %12s\n", r+1, sc.name, names[k], d.Round(time.Microsecond))
			}
			results[sc.name] = res
		}
	}
	fmt.Fprintf(out, "\n%-34s %12s %12s %10s %9s\n", "scenario (median)", "shipkit", "cosign CLI", "ratio", "goal")
	for _, sc := range scenarios {
		s, c := medianDuration(results[sc.name][0]), medianDuration(results[sc.name][1])
		fmt.Fprintf(out, "%-34s %12s %12s %9.4fx %9s\n", sc.name, s.Round(time.Microsecond), c.Round(time.Millisecond),
			s.Seconds()/c.Seconds(), sc.goal)
	}
	return nil
}

func newSignBench(ctx context.Context, cfg signConfig, host, dir string) (*signBench, error) {
	b := &signBench{cfg: cfg, host: host, dir: dir, password: []byte("bench")}
	pair, err := cosign.GenerateKeyPair(b.password)
	if err != nil {
		return nil, err
	}
	if _, _, err := pair.WriteFiles(dir); err != nil {
		return nil, err
	}
	if b.key, err = cosign.LoadPrivateKey(pair.PrivatePEM, b.password); err != nil {
		return nil, err
	}
	b.pub = b.key.TrustedKey("bench")
	b.env = append(os.Environ(), "COSIGN_PASSWORD="+string(b.password), "HOME="+dir,
		"TUF_ROOT="+filepath.Join(dir, "tuf"), "DOCKER_CONFIG="+filepath.Join(dir, "docker"))
	if b.preds, err = benchPredicates(); err != nil {
		return nil, err
	}
	for i, p := range b.preds {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("predicate-%d.json", i)), p.Body, 0o600); err != nil {
			return nil, err
		}
	}
	b.images = make([]name.Digest, cfg.images)
	errs := make([]error, cfg.images)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range b.images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			b.images[i], errs[i] = b.pushImage(ctx, fmt.Sprintf("app-%d", i))
			if errs[i] == nil {
				_, errs[i] = signImage(ctx, b.key, b.images[i], b.preds)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// benchPredicates are the three predicates a pipeline attests.
func benchPredicates() ([]sign.Predicate, error) {
	vuln, err := sign.VulnPredicate(&report.Report{Target: "app", Tool: &report.Tool{Name: "grype", URI: "pkg:golang/github.com/anchore/grype", FinishedOn: time.Now()}})
	if err != nil {
		return nil, err
	}
	prov, err := sign.Provenance{BuilderID: "https://ci.example.com/builder", SourceRepository: "https://github.com/example/app.git",
		SourceRevision: "9f2c1e0", StartedOn: time.Now(), FinishedOn: time.Now()}.Predicate()
	if err != nil {
		return nil, err
	}
	sbom := sign.SPDX([]byte(`{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","packages":[]}`))
	return []sign.Predicate{sbom, vuln, prov}, nil
}

// cliTypes are cosign's --type names of benchPredicates, in order.
var cliTypes = []string{"spdxjson", "vuln", "slsaprovenance1"}

func (b *signBench) pushImage(ctx context.Context, repo string) (name.Digest, error) {
	img, err := random.Image(1024, 1)
	if err != nil {
		return name.Digest{}, err
	}
	r, err := name.NewRepository(b.host + "/bench/" + repo)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Write(r.Tag("latest"), img, remote.WithContext(ctx)); err != nil {
		return name.Digest{}, err
	}
	h, err := img.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return r.Digest(h.String()), nil
}

func (b *signBench) policy() sign.Policy {
	return sign.Policy{TrustedKeys: []sign.TrustedKey{b.pub},
		RequiredPredicates: []string{sign.PredicateSPDX, sign.PredicateVuln, sign.PredicateSLSAProvenance}}
}

// verifyWarm is the time per verification of one image whose verdict is cached, as
// a deploy gate sees the same digest again (the mean of 1000).
func (b *signBench) verifyWarm(ctx context.Context, _ int) (time.Duration, error) {
	v, err := cosign.NewVerifier(b.policy())
	if err != nil {
		return 0, err
	}
	if _, err := v.Verify(ctx, b.images[0]); err != nil {
		return 0, err
	}
	const n = 1000
	start := time.Now()
	for range n {
		if _, err := v.Verify(ctx, b.images[0]); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / n, nil
}

func (b *signBench) verifyCold(ctx context.Context, round int) (time.Duration, error) {
	v, err := cosign.NewVerifier(b.policy(), cosign.WithCache(nil))
	if err != nil {
		return 0, err
	}
	start := time.Now()
	_, err = v.Verify(ctx, b.images[round%len(b.images)])
	return time.Since(start), err
}

// verifyMany verifies every image at once with one verifier and no cache.
func (b *signBench) verifyMany(ctx context.Context, _ int) (time.Duration, error) {
	v, err := cosign.NewVerifier(b.policy(), cosign.WithCache(nil))
	if err != nil {
		return 0, err
	}
	errs := make([]error, len(b.images))
	start := time.Now()
	var wg sync.WaitGroup
	for i, d := range b.images {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = v.Verify(ctx, d) }()
	}
	wg.Wait()
	d := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return d, nil
}

// signOne decrypts the key, signs a new image and attests it, as the CLI does.
func (b *signBench) signOne(ctx context.Context, _ int) (time.Duration, error) {
	d, err := b.pushImage(ctx, "sign")
	if err != nil {
		return 0, err
	}
	start := time.Now()
	key, err := cosign.LoadPrivateKeyFile(filepath.Join(b.dir, cosign.PrivateKeyFile), b.password)
	if err != nil {
		return 0, err
	}
	if _, err := signImage(ctx, key, d, b.preds); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// signImage signs d with key and attests preds.
func signImage(ctx context.Context, key *cosign.PrivateKey, d name.Digest, preds []sign.Predicate) (time.Duration, error) {
	start := time.Now()
	s, err := cosign.NewSigner(key)
	if err != nil {
		return 0, err
	}
	if err := s.Sign(ctx, d); err != nil {
		return 0, err
	}
	for _, p := range preds {
		if err := s.Attest(ctx, d, p); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// cliVerifyArgs are the cosign commands that verify what b.policy asks of d.
func (b *signBench) cliVerifyArgs(d name.Digest) [][]string {
	pub := filepath.Join(b.dir, cosign.PublicKeyFile)
	runs := [][]string{{"verify", "--key", pub, "--insecure-ignore-tlog", d.String()}}
	for _, typ := range cliTypes {
		runs = append(runs, []string{"verify-attestation", "--key", pub, "--insecure-ignore-tlog", "--type", typ, d.String()})
	}
	return runs
}

func (b *signBench) cli(ctx context.Context, args []string) error {
	cmd := exec.CommandContext(ctx, b.cfg.cosign, args...)
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cosign %v: %w\n%s", args, err, out)
	}
	return nil
}

func (b *signBench) cliVerifyOne(ctx context.Context, round int) (time.Duration, error) {
	start := time.Now()
	for _, args := range b.cliVerifyArgs(b.images[round%len(b.images)]) {
		if err := b.cli(ctx, args); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// cliVerifyMany verifies every image with the CLI, -cli-jobs processes at a time.
func (b *signBench) cliVerifyMany(ctx context.Context, _ int) (time.Duration, error) {
	var runs [][]string
	for _, d := range b.images {
		runs = append(runs, b.cliVerifyArgs(d)...)
	}
	errs := make([]error, len(runs))
	sem := make(chan struct{}, max(b.cfg.cliJobs, 1))
	start := time.Now()
	var wg sync.WaitGroup
	for i, args := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = b.cli(ctx, args)
		}()
	}
	wg.Wait()
	d := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return d, nil
}

func (b *signBench) cliSignOne(ctx context.Context, _ int) (time.Duration, error) {
	d, err := b.pushImage(ctx, "sign-cli")
	if err != nil {
		return 0, err
	}
	key := filepath.Join(b.dir, cosign.PrivateKeyFile)
	start := time.Now()
	if err := b.cli(ctx, []string{"sign", "--key", key, "--tlog-upload=false", "--yes", d.String()}); err != nil {
		return 0, err
	}
	for i, typ := range cliTypes {
		if err := b.cli(ctx, []string{"attest", "--key", key, "--tlog-upload=false", "--yes", "--type", typ,
			"--predicate", filepath.Join(b.dir, fmt.Sprintf("predicate-%d.json", i)), d.String()}); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	c := slices.Clone(ds)
	slices.Sort(c)
	return c[len(c)/2]
}
