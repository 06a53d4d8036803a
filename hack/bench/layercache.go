package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anchore/syft/syft/format/syftjson"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/shipkit/shipkit/scan/sbom"
)

// layerCacheCmd compares sbom.WithLayerCache with no cache (and `syft scan
// oci-dir:` when syft is installed): N images on one base, each with its own app
// layer (the Go binary of scan/testdata/gobin at three paths and a file naming
// the image). Each round alternates the sides; the cached side starts from an
// empty cache every round, so its first image pays in full. The SBOMs of the
// cached and uncached sides are compared byte for byte (syft JSON) and their
// packages with syft's every round.
func layerCacheCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("layercache", flag.ContinueOnError)
	rounds := fs.Int("rounds", 3, "alternating rounds")
	images := fs.Int("images", 5, "images on the shared base")
	debian := fs.Bool("debian", true, "use this host's Debian dpkg database, copyright files and a few binaries as the base (else a synthetic base of -debs packages)")
	debs := fs.Int("debs", 100, "packages of the synthetic base")
	syftPath := fs.String("syft", defaultTool("syft", syftVersion), "path of syft (skipped when missing)")
	gobin := fs.String("gobin", "scan/testdata/gobin", "Go main package built into the app layers")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the cached side's images in the last round to this file (see -profile)")
	cacheDir := fs.Bool("cache-dir", false, "give the cached side a cache directory kept across rounds (as a new process with a warm directory would have): from round 2 on its first image is a hit from disk")
	profileWhich := fs.String("profile", "hits", "with -cpuprofile: the cached side's images after the first (hits), its first image (miss), or the uncached side's first image (uncached)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *profileWhich {
	case "hits", "miss", "uncached":
	default:
		return fmt.Errorf("-profile %q: want hits, miss or uncached", *profileWhich)
	}
	dir, err := os.MkdirTemp("", "shipkit-bench-layercache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildGoBinary(ctx, *gobin, dir)
	if err != nil {
		return err
	}
	base, desc, err := benchBase(*debian, *debs)
	if err != nil {
		return err
	}
	imgs := make([]v1.Image, *images)
	layouts := make([]string, *images)
	for i := range imgs {
		app, err := tarLayer(map[string][]byte{
			"app/bin/one": bin, "app/bin/two": bin, "usr/local/bin/three": bin,
			"app/name": []byte(fmt.Sprintf("image %d\n", i)),
		})
		if err != nil {
			return err
		}
		if imgs[i], err = mutate.AppendLayers(empty.Image, base, app); err != nil {
			return err
		}
		layouts[i] = filepath.Join(dir, fmt.Sprintf("layout-%d", i))
		p, err := layout.Write(layouts[i], empty.Index)
		if err != nil {
			return err
		}
		if err := p.AppendImage(imgs[i]); err != nil {
			return err
		}
	}
	if _, err := os.Stat(*syftPath); err != nil {
		*syftPath = ""
	}
	fmt.Fprintf(out, "layer cache: %d images on %s, %d rounds; syft CLI: %q\n", *images, desc, *rounds, *syftPath)

	profileRound := false
	catalog := func(c *sbom.Cataloger, profile bool) ([]string, time.Duration, error) {
		start := time.Now()
		var docs []string
		var each []string
		var stopProfile func()
		defer func() { fmt.Fprintf(out, "  per image: %s\n", strings.Join(each, " ")) }()
		for n, img := range imgs {
			if profile && n == 0 && *profileWhich != "hits" || profile && n == 1 && *profileWhich == "hits" {
				stop, err := startCPUProfile(*cpuProfile)
				if err != nil {
					return nil, 0, err
				}
				stopProfile = stop
				defer stop()
			}
			t0 := time.Now()
			s, err := c.Catalog(ctx, img)
			each = append(each, fmt.Sprintf("%.2fs", time.Since(t0).Seconds()))
			if stopProfile != nil && *profileWhich != "hits" {
				stopProfile()
				stopProfile = nil
			}
			if err != nil {
				return nil, 0, err
			}
			var b bytes.Buffer
			if err := sbom.Encode(&b, s, sbom.SyftJSON); err != nil {
				return nil, 0, err
			}
			docs = append(docs, b.String())
		}
		return docs, time.Since(start), nil
	}
	type side struct {
		name string
		run  func() ([]string, time.Duration, error)
	}
	sides := []side{
		{"cached", func() ([]string, time.Duration, error) {
			lc := sbom.NewLayerCache()
			if *cacheDir {
				lc = sbom.NewLayerCache(sbom.WithCacheDir(filepath.Join(dir, "layer-cache")), sbom.WithCacheSecret([]byte("bench secret")))
			}
			docs, d, err := catalog(sbom.New(sbom.WithConcurrency(1), sbom.WithLayerCache(lc)), profileRound && *cpuProfile != "" && *profileWhich != "uncached")
			fmt.Fprintf(out, "  cache: %+v\n", lc.Stats())
			return docs, d, err
		}},
		{"uncached", func() ([]string, time.Duration, error) {
			return catalog(sbom.New(sbom.WithConcurrency(1)), profileRound && *cpuProfile != "" && *profileWhich == "uncached")
		}},
	}
	if *syftPath != "" {
		sides = append(sides, side{"syft scan", func() ([]string, time.Duration, error) {
			start := time.Now()
			var docs []string
			for _, l := range layouts {
				o := filepath.Join(dir, "syft.json")
				cmd := exec.CommandContext(ctx, *syftPath, "scan", "oci-dir:"+l, "-q", "-o", "syft-json="+o)
				cmd.Env = append(os.Environ(), "SYFT_CHECK_FOR_APP_UPDATE=false")
				if b, err := cmd.CombinedOutput(); err != nil {
					return nil, 0, fmt.Errorf("syft: %w\n%s", err, b)
				}
				b, err := os.ReadFile(o)
				if err != nil {
					return nil, 0, err
				}
				docs = append(docs, string(b))
			}
			return docs, time.Since(start), nil
		}})
	}
	times := make([][]time.Duration, len(sides))
	for r := range *rounds {
		profileRound = r == *rounds-1
		got := make([][]string, len(sides))
		order := make([]int, len(sides))
		for i := range order {
			order[i] = (i + r) % len(sides)
		}
		for _, i := range order {
			docs, d, err := sides[i].run()
			if err != nil {
				return fmt.Errorf("%s: %w", sides[i].name, err)
			}
			got[i], times[i] = docs, append(times[i], d)
			fmt.Fprintf(out, "round %d %-10s %8.3fs (load %s)\n", r+1, sides[i].name, d.Seconds(), loadAvg())
		}
		for n := range imgs {
			if got[0][n] != got[1][n] {
				return fmt.Errorf("round %d image %d: the cached SBOM differs from the uncached one", r+1, n)
			}
			if len(sides) > 2 {
				a, err := pkgList(got[1][n])
				if err != nil {
					return err
				}
				b, err := pkgList(got[2][n])
				if err != nil {
					return err
				}
				if a != b {
					return fmt.Errorf("round %d image %d: packages differ from syft's:\nshipkit:\n%s\nsyft:\n%s", r+1, n, a, b)
				}
			}
		}
	}
	fmt.Fprintf(out, "\n%-12s %10s %10s\n", "side", "median", "vs uncached")
	unc := medianOf(times[1])
	for i, s := range sides {
		m := medianOf(times[i])
		fmt.Fprintf(out, "%-12s %9.3fs %9.2fx\n", s.name, m.Seconds(), m.Seconds()/unc.Seconds())
	}
	return nil
}

// pkgList is every package of a syft JSON document by name, version, type, PURL,
// locations (path and layer) and licenses, sorted.
func pkgList(doc string) (string, error) {
	s, _, _, err := syftjson.NewFormatDecoder().Decode(strings.NewReader(doc))
	if err != nil {
		return "", err
	}
	var lines []string
	for p := range s.Artifacts.Packages.Enumerate() {
		var locs, lics []string
		for _, l := range p.Locations.ToSlice() {
			locs = append(locs, l.RealPath+"@"+l.FileSystemID)
		}
		for _, l := range p.Licenses.ToSlice() {
			lics = append(lics, l.Value+"="+l.SPDXExpression)
		}
		sort.Strings(locs)
		sort.Strings(lics)
		lines = append(lines, fmt.Sprintf("%s %s %s %s %v %v", p.Type, p.Name, p.Version, p.PURL, locs, lics))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n"), nil
}

// benchBase is the shared base layer: this host's dpkg database (status, the
// info/*.list, *.md5sums and *.conffiles files), os-release, every
// /usr/share/doc/*/copyright and three binaries, or a synthetic Debian base.
func benchBase(debian bool, debs int) (v1.Layer, string, error) {
	if !debian {
		files := map[string][]byte{"etc/os-release": []byte(debianOSRelease), "var/lib/dpkg/status": dpkgStatus(debs, 0)}
		l, err := tarLayer(files)
		return l, fmt.Sprintf("a synthetic Debian base of %d packages", debs+1), err
	}
	files := map[string][]byte{}
	add := func(p string) error {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil // symlinked doc dirs and the like are left out
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(p, "/")] = b
		return nil
	}
	for _, p := range []string{"/etc/os-release", "/var/lib/dpkg/status", "/usr/bin/ls", "/usr/bin/dpkg", "/usr/bin/bash"} {
		if err := add(p); err != nil {
			return nil, "", err
		}
	}
	if _, ok := files["var/lib/dpkg/status"]; !ok {
		return nil, "", errors.New("no /var/lib/dpkg/status on this host: use -debian=false")
	}
	for _, g := range []string{"/var/lib/dpkg/info/*.list", "/var/lib/dpkg/info/*.md5sums", "/var/lib/dpkg/info/*.conffiles", "/usr/share/doc/*/copyright"} {
		ms, err := filepath.Glob(g)
		if err != nil {
			return nil, "", err
		}
		for _, m := range ms {
			if err := add(m); err != nil && !errors.Is(err, fs.ErrPermission) {
				return nil, "", err
			}
		}
	}
	var size int
	for _, b := range files {
		size += len(b)
	}
	n := bytes.Count(files["var/lib/dpkg/status"], []byte("\nPackage: ")) + 1
	l, err := tarLayer(files)
	return l, fmt.Sprintf("this host's Debian (%d debs, %d files, %d MiB)", n, len(files), size>>20), err
}

// loadAvg is the 1-minute load average, or "?".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// startCPUProfile writes a CPU profile to path until the returned stop is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }, nil
}
