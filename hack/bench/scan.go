package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shipkit/shipkit/scan"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/scan/vulndb"
)

// Versions of the CLIs the scan scenario compares with; hack/bench/setup/syft.sh and
// grype.sh build the same from hack/tools/anchore.
const (
	syftVersion  = "v1.57.0"
	grypeVersion = "v0.121.2"
)

type scanConfig struct {
	rounds, images, sbomImages, debs, advisories int
	workers                                      int
	syft, grype, gobin                           string
	distinct                                     bool
	scenarios                                    string
}

// scanCmd compares shipkit's scan packages with the syft and grype CLIs on the same
// images, OCI layouts and vulnerability database:
//   - scan N SBOMs: vuln.Open once and N Scans, in process, vs N runs of
//     `grype sbom:<syft JSON>` (each loads the database);
//   - image to findings: one vuln.Open, then CatalogLayout and Scan per image, vs N
//     runs of `grype oci-dir:<layout>`;
//   - SBOM per image: sbom.Catalog of the image value, and sbom.CatalogLayout, vs
//     `syft scan oci-dir:<layout>`;
//   - parallel: the first two with -concurrency images at once vs one at a time,
//     both shipkit, the reports compared between the two every round.
//
// Against the CLIs, shipkit's scan scenario matches one SBOM at a time
// (vuln.WithConcurrency's default, 1) and its layout scenario takes up to
// -concurrency layouts at once (default GOMAXPROCS, sbom.WithConcurrency's
// default), each cataloged then scanned; the CLIs run one after another, as a CI
// loop runs them. The parallel scenario uses -concurrency for everything.
func scanCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	cfg := scanConfig{}
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds; the tool that goes first alternates")
	fs.IntVar(&cfg.images, "images", 20, "images scanned per round")
	fs.IntVar(&cfg.sbomImages, "sbom-images", 5, "images cataloged per round for the SBOM comparison")
	fs.IntVar(&cfg.debs, "debs", 100, "Debian packages in each image's dpkg status")
	fs.IntVar(&cfg.advisories, "advisories", 20000, "advisories in the vulnerability database")
	fs.StringVar(&cfg.syft, "syft", defaultTool("syft", syftVersion), "path of syft (hack/bench/setup.sh syft)")
	fs.StringVar(&cfg.grype, "grype", defaultTool("grype", grypeVersion), "path of grype (hack/bench/setup.sh grype)")
	fs.BoolVar(&cfg.distinct, "distinct", false, "give every image its own base layer (dpkg entries differ in Installed-Size), so no package repeats across images")
	fs.StringVar(&cfg.scenarios, "scenarios", "scan,layout,sbom", "comma-separated scenarios to run: scan, layout, sbom, parallel")
	fs.IntVar(&cfg.workers, "concurrency", runtime.GOMAXPROCS(0), "images shipkit catalogs and scans at once")
	fs.StringVar(&cfg.gobin, "gobin", "scan/testdata/gobin", "Go main package (vendored) whose binary each image carries")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.images < 1 || cfg.rounds < 1 || cfg.sbomImages < 1 || cfg.sbomImages > cfg.images || cfg.workers < 1 {
		return fmt.Errorf("want -rounds ≥ 1, -concurrency ≥ 1 and 1 ≤ -sbom-images ≤ -images")
	}
	if cfg.peers() {
		for tool, path := range map[string]string{"syft": cfg.syft, "grype": cfg.grype} {
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("%s not found at %s (run hack/bench/setup.sh %s or pass -%s): %w", tool, path, tool, tool, err)
			}
		}
	}
	b, err := newScanBench(ctx, cfg, out)
	if err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	return b.run(ctx, out)
}

// peers says whether a scenario that runs syft or grype is selected.
func (cfg scanConfig) peers() bool {
	for _, sc := range strings.Split(cfg.scenarios, ",") {
		if sc != "parallel" {
			return true
		}
	}
	return false
}

// scanBench holds the inputs every round shares.
type scanBench struct {
	mu   sync.Mutex
	seen map[string][][]scan.Finding // findings of the parallel scenario's sides

	cfg     scanConfig
	dir     string
	dbRoot  string
	env     []string
	images  []v1.Image
	layouts []string // one OCI layout per image
	sboms   []string // syft JSON of each image, written by shipkit
	values  []*scan.SBOM
}

func newScanBench(ctx context.Context, cfg scanConfig, out io.Writer) (*scanBench, error) {
	dir, err := os.MkdirTemp("", "shipkit-bench-scan-")
	if err != nil {
		return nil, err
	}
	b := &scanBench{cfg: cfg, dir: dir, dbRoot: filepath.Join(dir, "db")}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	b.env = append(os.Environ(),
		"SYFT_CHECK_FOR_APP_UPDATE=false", "GRYPE_CHECK_FOR_APP_UPDATE=false",
		"GRYPE_DB_CACHE_DIR="+b.dbRoot, "GRYPE_DB_AUTO_UPDATE=false", "GRYPE_DB_VALIDATE_AGE=false",
		"GRYPE_DB_REQUIRE_UPDATE_CHECK=false")

	start := time.Now()
	db, err := vulndb.Write(ctx, b.dbRoot, benchAdvisories(cfg.advisories, cfg.debs))
	if err != nil {
		return nil, fmt.Errorf("writing the vulnerability database: %w", err)
	}
	fi, err := os.Stat(db.Path)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "database: %d advisories, %.1f MiB, schema %s, written in %.1fs\n",
		cfg.advisories+cfg.debs/3+1, float64(fi.Size())/(1<<20), db.SchemaVersion, time.Since(start).Seconds())

	bin, err := buildGoBinary(ctx, cfg.gobin, dir)
	if err != nil {
		return nil, err
	}
	baseLayer := func(i int) (v1.Layer, error) {
		return tarLayer(map[string][]byte{
			"etc/os-release":      []byte(debianOSRelease),
			"var/lib/dpkg/status": dpkgStatus(cfg.debs, i),
		})
	}
	base, err := baseLayer(0)
	if err != nil {
		return nil, err
	}
	cat := sbom.New(sbom.WithConcurrency(1))
	for i := range cfg.images {
		if cfg.distinct {
			if base, err = baseLayer(i); err != nil {
				return nil, err
			}
		}
		app, err := tarLayer(map[string][]byte{
			"usr/local/bin/app": bin,
			"etc/app-id":        fmt.Appendf(nil, "image %d\n", i),
		})
		if err != nil {
			return nil, err
		}
		img, err := mutate.AppendLayers(empty.Image, base, app)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, err
		}
		lp := filepath.Join(dir, fmt.Sprintf("layout-%02d", i))
		p, err := layout.Write(lp, empty.Index)
		if err != nil {
			return nil, err
		}
		if err := p.AppendImage(img); err != nil {
			return nil, err
		}
		s, err := cat.Catalog(ctx, img)
		if err != nil {
			return nil, err
		}
		sp := filepath.Join(dir, fmt.Sprintf("sbom-%02d.json", i))
		if err := writeSBOM(sp, s); err != nil {
			return nil, err
		}
		b.images, b.layouts, b.sboms = append(b.images, img), append(b.layouts, lp), append(b.sboms, sp)
		b.values = append(b.values, s)
	}
	if cfg.peers() {
		if err := b.crossCheck(ctx, out); err != nil {
			return nil, err
		}
	}
	ok = true
	return b, nil
}

// crossCheck scans the first image both ways and compares the vulnerability ids,
// so the two sides are known to do the same work on the same database.
func (b *scanBench) crossCheck(ctx context.Context, out io.Writer) error {
	s, err := vuln.Open(ctx, b.dbRoot)
	if err != nil {
		return err
	}
	defer s.Close()
	sbs, err := sbom.New().CatalogLayout(ctx, b.layouts[0])
	if err != nil {
		return err
	}
	r, err := s.Scan(ctx, sbs[0])
	if err != nil {
		return err
	}
	var ours []string
	for _, f := range r.Findings {
		ours = append(ours, f.ID+" "+f.Package)
	}
	raw, err := b.cli(ctx, b.cfg.grype, "oci-dir:"+b.layouts[0], "-q", "-o", "json")
	if err != nil {
		return err
	}
	var doc struct {
		Matches []struct {
			Vulnerability struct{ ID string }   `json:"vulnerability"`
			Artifact      struct{ Name string } `json:"artifact"`
		} `json:"matches"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return fmt.Errorf("grype JSON: %w", err)
	}
	var theirs []string
	for _, m := range doc.Matches {
		theirs = append(theirs, m.Vulnerability.ID+" "+m.Artifact.Name)
	}
	sort.Strings(ours)
	sort.Strings(theirs)
	fmt.Fprintf(out, "images: %d (Debian 12 base with %d packages, a Go binary), findings per image: shipkit %d, grype CLI %d\n",
		len(b.images), b.cfg.debs+1, len(ours), len(theirs))
	if !slices.Equal(ours, theirs) {
		fmt.Fprintf(out, "WARNING: the findings differ\n  shipkit: %v\n  grype:   %v\n", ours, theirs)
	}
	return nil
}

func (b *scanBench) run(ctx context.Context, out io.Writer) error {
	n := len(b.images)
	type side struct {
		name string
		run  func() (time.Duration, error)
	}
	scenarios := []struct {
		name       string
		perImage   int // > 0: the times are divided by this many images
		ours, peer side
	}{
		{fmt.Sprintf("scan %d SBOMs", n), 0,
			side{"shipkit", func() (time.Duration, error) { _, d, err := b.scanSBOMs(ctx, 1); return d, err }},
			side{"grype", func() (time.Duration, error) { return b.cliEach(ctx, n, b.cfg.grype, "sbom:%s") }}},
		{fmt.Sprintf("layout→findings ×%d", n), 0,
			side{"shipkit", func() (time.Duration, error) {
				_, d, err := b.layoutsToFindings(ctx, b.cfg.workers, 1)
				return d, err
			}},
			side{"grype", func() (time.Duration, error) { return b.cliEach(ctx, n, b.cfg.grype, "oci-dir:%l") }}},
		{"SBOM/image, value", b.cfg.sbomImages,
			side{"shipkit", func() (time.Duration, error) { return b.catalog(ctx, false) }},
			side{"syft", func() (time.Duration, error) {
				return b.cliEach(ctx, b.cfg.sbomImages, b.cfg.syft, "scan", "oci-dir:%l")
			}}},
		{"SBOM/image, layout", b.cfg.sbomImages,
			side{"shipkit", func() (time.Duration, error) { return b.catalog(ctx, true) }},
			side{"syft", func() (time.Duration, error) {
				return b.cliEach(ctx, b.cfg.sbomImages, b.cfg.syft, "scan", "oci-dir:%l")
			}}},
		{fmt.Sprintf("scan %d SBOMs, ×%d", n, b.cfg.workers), 0,
			side{"shipkit", func() (time.Duration, error) { return b.compared(ctx, "scan", b.scanSBOMs) }},
			side{"shipkit×1", func() (time.Duration, error) { return b.compared(ctx, "scan ×1", b.scanSBOMs) }}},
		{fmt.Sprintf("layout→findings, ×%d", b.cfg.workers), 0,
			side{"shipkit", func() (time.Duration, error) { return b.compared(ctx, "layout", b.layoutsToFindingsN) }},
			side{"shipkit×1", func() (time.Duration, error) { return b.compared(ctx, "layout ×1", b.layoutsToFindingsN) }}},
	}
	want := map[int]string{0: "scan", 1: "layout", 2: "sbom", 3: "sbom", 4: "parallel", 5: "parallel"}
	results := make([][2][]time.Duration, len(scenarios))
	for r := range b.cfg.rounds {
		for i, sc := range scenarios {
			if !slices.Contains(strings.Split(b.cfg.scenarios, ","), want[i]) {
				continue
			}
			sides := []side{sc.ours, sc.peer}
			first := 0
			if r%2 == 1 {
				first = 1
			}
			for k := range 2 {
				j := (first + k) % 2
				d, err := sides[j].run()
				if err != nil {
					return fmt.Errorf("%s, %s: %w", sc.name, sides[j].name, err)
				}
				if sc.perImage > 0 {
					d /= time.Duration(sc.perImage)
				}
				results[i][j] = append(results[i][j], d)
				fmt.Fprintf(out, "  round %d  %-22s %-8s %8.3fs\n", r+1, sc.name, sides[j].name, d.Seconds())
			}
		}
	}
	fmt.Fprintf(out, "\n%-22s %10s %10s %8s\n", "scenario (median)", "shipkit", "CLI", "ratio")
	for i, sc := range scenarios {
		if len(results[i][0]) == 0 {
			continue
		}
		o, p := medianDuration(results[i][0]), medianDuration(results[i][1])
		fmt.Fprintf(out, "%-22s %9.3fs %9.3fs %7.3fx  (%s)\n", sc.name, o.Seconds(), p.Seconds(), o.Seconds()/p.Seconds(), sc.peer.name)
	}
	return nil
}

// compared runs one of the shipkit sides with -concurrency workers (key without
// " ×1") or one (key ending " ×1"), and checks that both give the same findings
// for every image, in the same order.
func (b *scanBench) compared(ctx context.Context, key string, f func(context.Context, int) ([]*scan.Report, time.Duration, error)) (time.Duration, error) {
	workers, base := b.cfg.workers, key
	if k, ok := strings.CutSuffix(key, " ×1"); ok {
		workers, base = 1, k
	}
	reports, d, err := f(ctx, workers)
	if err != nil {
		return 0, err
	}
	findings := make([][]scan.Finding, len(reports))
	for i, r := range reports {
		findings[i] = r.Findings
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen == nil {
		b.seen = map[string][][]scan.Finding{}
	}
	if prev, ok := b.seen[base]; ok && !reflect.DeepEqual(prev, findings) {
		return 0, fmt.Errorf("%s: the findings differ between one worker and %d", base, b.cfg.workers)
	}
	b.seen[base] = findings
	return d, nil
}

// scanSBOMs opens the database once and scans every image's SBOM, workers at once.
func (b *scanBench) scanSBOMs(ctx context.Context, workers int) ([]*scan.Report, time.Duration, error) {
	// The SBOMs were made once at setup: the caller of shipkit holds them as values,
	// grype reads them from files (its decoding is timed; it is part of its run).
	start := time.Now()
	s, err := vuln.Open(ctx, b.dbRoot, vuln.WithConcurrency(workers))
	if err != nil {
		return nil, 0, err
	}
	defer s.Close()
	reports, err := s.ScanAll(ctx, b.values)
	if err != nil {
		return nil, 0, err
	}
	return reports, time.Since(start), nil
}

// layoutsToFindingsN is layoutsToFindings with workers for both cataloging and
// scanning.
func (b *scanBench) layoutsToFindingsN(ctx context.Context, workers int) ([]*scan.Report, time.Duration, error) {
	return b.layoutsToFindings(ctx, workers, workers)
}

// layoutsToFindings opens the database once and catalogs and scans every layout,
// workers layouts at once (each catalog then scan), with one Cataloger; each
// layout's SBOMs are scanned scanWorkers at once.
func (b *scanBench) layoutsToFindings(ctx context.Context, workers, scanWorkers int) ([]*scan.Report, time.Duration, error) {
	start := time.Now()
	s, err := vuln.Open(ctx, b.dbRoot, vuln.WithConcurrency(scanWorkers))
	if err != nil {
		return nil, 0, err
	}
	defer s.Close()
	cat := sbom.New(sbom.WithConcurrency(workers))
	reports := make([][]*scan.Report, len(b.layouts))
	errs := make([]error, len(b.layouts))
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, l := range b.layouts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sbs, err := cat.CatalogLayout(ctx, l)
			if err == nil {
				reports[i], err = s.ScanAll(ctx, sbs)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	return slices.Concat(reports...), time.Since(start), nil
}

// catalog catalogs the first sbom-images images, from the value or from the layout.
func (b *scanBench) catalog(ctx context.Context, fromLayout bool) (time.Duration, error) {
	cat := sbom.New()
	start := time.Now()
	for i := range b.cfg.sbomImages {
		var err error
		if fromLayout {
			_, err = cat.CatalogLayout(ctx, b.layouts[i])
		} else {
			_, err = cat.Catalog(ctx, b.images[i])
		}
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// cliEach runs tool once for each of the first n images, with "%s" in an argument
// replaced by the image's SBOM file and "%l" by its layout; output is discarded
// the way each CLI does it (JSON to a file), so encoding is timed on both sides.
func (b *scanBench) cliEach(ctx context.Context, n int, tool string, args ...string) (time.Duration, error) {
	start := time.Now()
	for i := range n {
		a := make([]string, 0, len(args)+4)
		for _, arg := range args {
			a = append(a, strings.NewReplacer("%s", b.sboms[i], "%l", b.layouts[i]).Replace(arg))
		}
		outFile := filepath.Join(b.dir, "cli-out.json")
		if filepath.Base(tool) == "syft" {
			a = append(a, "-q", "-o", "syft-json="+outFile)
		} else {
			a = append(a, "-q", "-o", "json", "--file", outFile)
		}
		if _, err := b.cli(ctx, tool, a...); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// cli runs a tool with the bench's environment and returns its stdout.
func (b *scanBench) cli(ctx context.Context, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env, cmd.Dir = b.env, b.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", filepath.Base(tool), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func writeSBOM(path string, s *scan.SBOM) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := sbom.Encode(f, s, sbom.SyftJSON); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchAdvisories returns n Go module advisories for modules no image holds (the
// bulk of a database), one for golang.org/x/text that the Go binary's v0.3.6
// matches, and one for every third Debian package of [dpkgStatus].
func benchAdvisories(n, debs int) []vulndb.Record {
	recs := make([]vulndb.Record, 0, n+debs/3+1)
	recs = append(recs, vulndb.Record{
		ID: "GHSA-69ch-w2m2-3vjp", Aliases: []string{"CVE-2022-32149"}, Type: "go-module",
		Package: "golang.org/x/text", Ranges: []vulndb.Range{{FixedIn: "0.3.8"}}, Severity: "high",
		CVSS: []vulndb.CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}},
	})
	for i := 0; i < debs; i += 3 {
		recs = append(recs, vulndb.Record{
			ID: fmt.Sprintf("CVE-2024-%05d", 10000+i), Type: "deb", Distro: "debian:12",
			Package: fmt.Sprintf("libbench%03d", i), Ranges: []vulndb.Range{{FixedIn: "1.0-2"}}, Severity: "medium",
		})
	}
	for i := range n {
		recs = append(recs, vulndb.Record{
			ID: fmt.Sprintf("GHSA-bnch-%04x-%04x", i>>16, i&0xffff), Type: "go-module",
			Package: fmt.Sprintf("example.com/bench/mod%05d", i),
			Ranges:  []vulndb.Range{{Vulnerable: ">= 1.0.0, < 1.2.3", FixedIn: "1.2.3"}}, Severity: "low",
		})
	}
	return recs
}

const debianOSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
`

// dpkgStatus lists libc6 and n packages libbenchNNN 1.0-1; variant changes
// Installed-Size, which makes other packages of the same names and versions.
func dpkgStatus(n, variant int) []byte {
	var b bytes.Buffer
	entry := func(pkg, src, version string) {
		fmt.Fprintf(&b, "Package: %s\nStatus: install ok installed\nPriority: optional\nSection: libs\n"+
			"Installed-Size: %d\nMaintainer: Bench <bench@example.com>\nArchitecture: amd64\nSource: %s\n"+
			"Version: %s\nDescription: %s\n\n", pkg, 100+variant, src, version, pkg)
	}
	entry("libc6", "glibc", "2.36-9+deb12u2")
	for i := range n {
		entry(fmt.Sprintf("libbench%03d", i), fmt.Sprintf("libbench%03d", i), "1.0-1")
	}
	return b.Bytes()
}

// tarLayer returns a layer holding the files (with their parent directories).
func tarLayer(files map[string][]byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	dirs := map[string]bool{}
	for _, n := range names {
		for d := filepath.Dir(n); d != "."; d = filepath.Dir(d) {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
					return nil, err
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(files[n]))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// buildGoBinary builds the vendored Go main package src for linux/amd64.
func buildGoBinary(ctx context.Context, src, dir string) ([]byte, error) {
	out := filepath.Join(dir, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=vendor -buildvcs=false", "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", src, err, b)
	}
	return os.ReadFile(out)
}
