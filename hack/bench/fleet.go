package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shipkit/shipkit/deploy"
	deployfleet "github.com/shipkit/shipkit/deploy/fleet"
	"github.com/shipkit/shipkit/internal/testbed/kube"
	"github.com/shipkit/shipkit/internal/testbed/vulndb"
	"github.com/shipkit/shipkit/scan/fleet"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/sign"
	"github.com/shipkit/shipkit/sign/cosign"
)

type fleetConfig struct {
	images, bases, sample, concurrency, rounds int
	clusters, pods                             int
	grype                                      string
	skipRescan, skipInventory                  bool
	cpuProfile                                 string
}

// fleetCmd measures the fleet stages:
//   - rescan: scan/fleet.Rescan of -images distinct images (each its own digest,
//     signature and SPDX SBOM attestation, on -bases distinct Debian bases with a Go
//     binary), pushed to two registries and spread over three clusters' uses,
//     against `grype registry:<image>` (which pulls the layers) on -sample of the
//     same images, extrapolated per image. No layer of an image may be read by the
//     re-scan (blob GETs counted);
//   - inventory: deploy/fleet.TakeInventory of -clusters test control planes
//     holding -pods pods in all (Deployments whose pods kwok runs).
func fleetCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	cfg := fleetConfig{}
	fs.IntVar(&cfg.images, "images", 1000, "distinct images re-scanned")
	fs.IntVar(&cfg.bases, "bases", 20, "distinct base layers (package sets) the images are built on")
	fs.IntVar(&cfg.sample, "sample", 3, "images scanned with the grype CLI (0: none)")
	fs.IntVar(&cfg.concurrency, "concurrency", 0, "Rescan's Concurrency (0: its default)")
	fs.IntVar(&cfg.rounds, "rounds", 2, "rounds of each measurement")
	fs.IntVar(&cfg.clusters, "clusters", 3, "control planes of the inventory scenario")
	fs.IntVar(&cfg.pods, "pods", 5000, "pods in all clusters")
	fs.StringVar(&cfg.grype, "grype", defaultTool("grype", grypeVersion), "path of grype (hack/bench/setup.sh grype)")
	fs.BoolVar(&cfg.skipRescan, "skip-rescan", false, "skip the re-scan scenario")
	fs.BoolVar(&cfg.skipInventory, "skip-inventory", false, "skip the inventory scenario")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed re-scans to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(out, "load average at start: %s", load)
	}
	var images []string
	if !cfg.skipRescan {
		var err error
		if images, err = benchRescan(ctx, cfg, out); err != nil {
			return err
		}
	}
	if !cfg.skipInventory {
		return benchInventory(ctx, cfg, images, out)
	}
	return nil
}

// layerCounter counts GETs of the given blobs.
type layerCounter struct {
	layers map[string]bool
	gets   atomic.Int64
}

func (c *layerCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if _, d, ok := strings.Cut(r.URL.Path, "/blobs/"); ok && r.Method == http.MethodGet && c.layers[d] {
		c.gets.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func benchRescan(ctx context.Context, cfg fleetConfig, out io.Writer) ([]string, error) {
	dir, err := os.MkdirTemp("", "shipkit-bench-fleet-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	dbRoot := filepath.Join(dir, "db")
	if _, err := vulndb.Write(ctx, dbRoot, benchAdvisories(2000, 30)); err != nil {
		return nil, err
	}
	var regs []*countingRegistry
	for range 2 {
		r, err := startRegistry(ctx)
		if err != nil {
			return nil, err
		}
		defer r.close()
		regs = append(regs, r)
	}
	bin, err := buildGoBinary(ctx, "scan/testdata/gobin", dir)
	if err != nil {
		return nil, err
	}
	pair, err := cosign.GenerateKeyPair([]byte("bench"))
	if err != nil {
		return nil, err
	}
	key, err := cosign.LoadPrivateKey(pair.PrivatePEM, []byte("bench"))
	if err != nil {
		return nil, err
	}
	signer, err := cosign.NewSigner(key)
	if err != nil {
		return nil, err
	}

	start := time.Now()
	app, err := tarLayer(map[string][]byte{"usr/local/bin/app": bin})
	if err != nil {
		return nil, err
	}
	bases := make([]v1.Image, cfg.bases)
	docs := make([][]byte, cfg.bases)
	cat := sbom.New(sbom.WithConcurrency(1))
	for i := range bases {
		base, err := tarLayer(map[string][]byte{"etc/os-release": []byte(debianOSRelease), "var/lib/dpkg/status": dpkgStatus(30, i)})
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
		s, err := cat.Catalog(ctx, img)
		if err != nil {
			return nil, err
		}
		p, err := sbom.Predicate(s, sbom.SPDXJSON)
		if err != nil {
			return nil, err
		}
		bases[i], docs[i] = img, p.Body
	}
	counter := &layerCounter{layers: map[string]bool{}}
	images := make([]string, cfg.images)
	var mu sync.Mutex
	sem := make(chan struct{}, 8)
	errs := make(chan error, cfg.images)
	var wg sync.WaitGroup
	for i := range cfg.images {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			id, err := tarLayer(map[string][]byte{"etc/app-id": fmt.Appendf(nil, "image %d\n", i)})
			if err != nil {
				errs <- err
				return
			}
			img, err := mutate.AppendLayers(bases[i%cfg.bases], id)
			if err != nil {
				errs <- err
				return
			}
			ref, err := name.ParseReference(fmt.Sprintf("%s/fleet/app%04d:v1", regs[i%2].host, i))
			if err != nil {
				errs <- err
				return
			}
			if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
				errs <- err
				return
			}
			h, _ := img.Digest()
			d := ref.Context().Digest(h.String())
			if err := signer.Sign(ctx, d); err != nil {
				errs <- err
				return
			}
			if err := signer.Attest(ctx, d, sign.SPDX(docs[i%cfg.bases])); err != nil {
				errs <- err
				return
			}
			ls, _ := img.Layers()
			mu.Lock()
			for _, l := range ls {
				ld, _ := l.Digest()
				counter.layers[ld.String()] = true
			}
			images[i] = d.Name()
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "rescan setup: %d images (%d bases, 2 registries) pushed, signed and attested in %.1fs\n",
		cfg.images, cfg.bases, time.Since(start).Seconds())

	inv := &deployfleet.Inventory{}
	clusters := []string{"east", "west", "north"}
	for i, d := range images {
		c := clusters[i%3]
		inv.Images = append(inv.Images, deployfleet.Image{Digest: d, Uses: []deployfleet.Use{{
			Cluster: c, Workload: deploy.ObjectRef{Group: "apps", Kind: "Deployment", Namespace: "apps", Name: fmt.Sprintf("app%04d", i)},
			Container: "app", Kind: deploy.ContainerImage, Running: true, Pods: 2, Image: d,
		}}})
	}

	var times []time.Duration
	var peak int64
	var rep *fleet.Report
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer pprof.StopCPUProfile()
	}
	for round := range cfg.rounds {
		runtime.GC()
		_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset the peak RSS
		verifier, err := cosign.NewVerifier(sign.Policy{TrustedKeys: []sign.TrustedKey{key.TrustedKey("ci")}},
			cosign.WithTransport(counter), cosign.WithCache(sign.NewCache(sign.CacheMaxEntries(0))))
		if err != nil {
			return nil, err
		}
		db, err := vuln.Open(ctx, dbRoot) // a new database: no match cached from the last round
		if err != nil {
			return nil, err
		}
		cpu0 := cpuTime()
		t0 := time.Now()
		rep, err = fleet.Rescan(ctx, inv, fleet.Options{Verifier: verifier, Scanner: db, Concurrency: cfg.concurrency})
		d := time.Since(t0)
		cpu := cpuTime() - cpu0
		_ = db.Close()
		if err != nil {
			return nil, err
		}
		hwm := peakRSS()
		peak = max(peak, hwm)
		times = append(times, d)
		load, _ := os.ReadFile("/proc/loadavg")
		fmt.Fprintf(out, "  round %d: Rescan of %d images %.1fs (process CPU %.1fs, both in-process registries included), peak RSS %d MiB, load %s",
			round+1, cfg.images, d.Seconds(), cpu.Seconds(), hwm>>20, load)
	}
	scanned := 0
	for _, s := range rep.Images {
		if s.Status == fleet.Scanned {
			scanned++
		}
	}
	ours := medianDuration(times)
	fmt.Fprintf(out, "shipkit Rescan: %d images, %d scanned from verified SBOMs, %d advisories; median %.1fs (%.1f ms/image), peak RSS %d MiB, image layer GETs %d\n",
		cfg.images, scanned, len(rep.Advisories), ours.Seconds(), ours.Seconds()*1000/float64(cfg.images), peak>>20, counter.gets.Load())

	if cfg.sample > 0 {
		if _, err := os.Stat(cfg.grype); err != nil {
			return images, fmt.Errorf("grype not found at %s (hack/bench/setup.sh grype, or -sample 0): %w", cfg.grype, err)
		}
		env := append(os.Environ(), "GRYPE_CHECK_FOR_APP_UPDATE=false", "GRYPE_DB_CACHE_DIR="+dbRoot, "GRYPE_DB_AUTO_UPDATE=false",
			"GRYPE_DB_VALIDATE_AGE=false", "GRYPE_DB_REQUIRE_UPDATE_CHECK=false", "GRYPE_REGISTRY_INSECURE_USE_HTTP=true")
		var total time.Duration
		for i := range cfg.sample {
			img := images[i*len(images)/cfg.sample]
			outFile := filepath.Join(dir, "grype.json")
			t0 := time.Now()
			if err := runTool(ctx, env, cfg.grype, "registry:"+img, "-q", "-o", "json", "--file", outFile); err != nil {
				return images, err
			}
			total += time.Since(t0)
			theirs, err := grypeIDs(outFile)
			if err != nil {
				return images, err
			}
			mine := reportIDs(rep, img)
			if !slices.Equal(mine, theirs) {
				fmt.Fprintf(out, "WARNING: findings differ for %s\n  shipkit: %v\n  grype:   %v\n", img, mine, theirs)
			} else {
				fmt.Fprintf(out, "  grype registry:%s: %.1fs, same %d advisories\n", img[strings.Index(img, "/")+1:], time.Since(t0).Seconds(), len(mine))
			}
		}
		per := total / time.Duration(cfg.sample)
		fmt.Fprintf(out, "grype per image (pulls layers): %.2fs over %d images; extrapolated to %d images: %.0fs; ratio shipkit/grype %.4fx\n",
			per.Seconds(), cfg.sample, cfg.images, per.Seconds()*float64(cfg.images), ours.Seconds()/(per.Seconds()*float64(cfg.images)))
	}
	return images, nil
}

func runTool(ctx context.Context, env []string, tool string, args ...string) error {
	b := &scanBench{env: env, dir: os.TempDir()}
	_, err := b.cli(ctx, tool, args...)
	return err
}

func grypeIDs(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Matches []struct {
			Vulnerability struct {
				ID string `json:"id"`
			} `json:"vulnerability"`
		} `json:"matches"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range doc.Matches {
		if !slices.Contains(ids, m.Vulnerability.ID) {
			ids = append(ids, m.Vulnerability.ID)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

func reportIDs(rep *fleet.Report, img string) []string {
	var ids []string
	for _, a := range rep.Advisories {
		for _, af := range a.Affected {
			if af.Image == img && !slices.Contains(ids, a.ID) {
				ids = append(ids, a.ID)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS reads the process's peak resident set size (VmHWM) in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

func benchInventory(ctx context.Context, cfg fleetConfig, images []string, out io.Writer) error {
	if len(images) == 0 {
		for i := range 100 {
			images = append(images, fmt.Sprintf("registry.example/fleet/app%04d@sha256:%064x", i, i+1))
		}
	}
	fmt.Fprintf(out, "inventory: starting %d control planes\n", cfg.clusters)
	start := time.Now()
	clusters := make([]*kube.Cluster, cfg.clusters)
	stops := make([]func(), cfg.clusters)
	errs := make([]error, cfg.clusters)
	var wg sync.WaitGroup
	for i := range clusters {
		wg.Go(func() { clusters[i], stops[i], errs[i] = kube.StartContext(ctx) })
	}
	wg.Wait()
	defer func() {
		for _, stop := range stops {
			if stop != nil {
				stop()
			}
		}
	}()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "  started in %.0fs\n", time.Since(start).Seconds())

	// Deployments of 50 replicas, each naming 2 images (an init container and a
	// container), until the pods are placed.
	perCluster := cfg.pods / cfg.clusters
	const replicas = 50
	t0 := time.Now()
	for ci, c := range clusters {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fleet"}}
		if _, err := c.Clientset().CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			return err
		}
		for d := 0; d*replicas < perCluster; d++ {
			n := int32(min(replicas, perCluster-d*replicas))
			img := images[(ci*1000+d)%len(images)]
			dep := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app%03d", d), Namespace: "fleet"},
				Spec: appsv1.DeploymentSpec{
					Replicas: &n,
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprint(d)}},
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": fmt.Sprint(d)}},
						Spec: corev1.PodSpec{
							InitContainers: []corev1.Container{{Name: "init", Image: images[(d+7)%len(images)]}},
							Containers:     []corev1.Container{{Name: "app", Image: img}},
						},
					},
				},
			}
			if _, err := c.Clientset().AppsV1().Deployments("fleet").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
	}
	for ci, c := range clusters {
		for {
			pods, err := c.Clientset().CoreV1().Pods("fleet").List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			running := 0
			for _, p := range pods.Items {
				if p.Status.Phase == corev1.PodRunning {
					running++
				}
			}
			if running >= perCluster || time.Since(t0) > 10*time.Minute {
				fmt.Fprintf(out, "  cluster %d: %d pods, %d running (%.0fs)\n", ci, len(pods.Items), running, time.Since(t0).Seconds())
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
			}
		}
	}
	targets := make([]deployfleet.Target, len(clusters))
	for i, c := range clusters {
		targets[i] = deployfleet.Target{Name: fmt.Sprintf("c%d", i), Config: c.RESTConfig()}
	}
	var times []time.Duration
	for round := range max(cfg.rounds, 3) {
		t0 := time.Now()
		inv, err := deployfleet.TakeInventory(ctx, targets, deployfleet.InventoryOptions{})
		d := time.Since(t0)
		if err != nil {
			return err
		}
		if err := inv.Err(); err != nil {
			return err
		}
		pods, uses := 0, 0
		for _, c := range inv.Clusters {
			pods += c.Pods
		}
		for _, img := range inv.Images {
			uses += len(img.Uses)
		}
		times = append(times, d)
		fmt.Fprintf(out, "  round %d: TakeInventory of %d clusters, %d pods: %.2fs, %d images, %d uses\n", round+1, len(targets), pods, d.Seconds(), len(inv.Images), uses)
	}
	fmt.Fprintf(out, "inventory median: %.2fs\n", medianDuration(times).Seconds())
	return nil
}
