package reach_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	govulncheck "golang.org/x/vuln/scan"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/reach"
	"github.com/shipkit/shipkit/scan/report"
	"github.com/shipkit/shipkit/scan/sbom"
	"github.com/shipkit/shipkit/scan/suppress"
	"github.com/shipkit/shipkit/scan/vuln"
	"github.com/shipkit/shipkit/scan/vulndb"
)

const appPath = "/app/vulnapp"

var (
	appOnce sync.Once
	appBin  []byte
	appErr  error
)

// vulnapp builds testdata/vulnapp for linux/amd64 once per test process, from the
// module cache (the go.sum is checked in).
func vulnapp(t testing.TB) []byte {
	t.Helper()
	appOnce.Do(func() {
		out := filepath.Join(os.TempDir(), "shipkit-reach-vulnapp-"+strings.ReplaceAll(time.Now().Format(time.RFC3339Nano), ":", ""))
		defer os.Remove(out)
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
		cmd.Dir = "testdata/vulnapp"
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=readonly -buildvcs=false", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			appErr = errors.New(err.Error() + ": " + string(b))
			return
		}
		appBin, appErr = os.ReadFile(out)
	})
	require.NoError(t, appErr)
	return appBin
}

var (
	strippedOnce sync.Once
	strippedBin  []byte
	strippedErr  error
)

// strippedApp builds testdata/vulnapp without its symbol table (-ldflags=-s -w)
// once per test process.
func strippedApp(t testing.TB) []byte {
	t.Helper()
	strippedOnce.Do(func() {
		out := filepath.Join(os.TempDir(), "shipkit-reach-stripped-"+strings.ReplaceAll(time.Now().Format(time.RFC3339Nano), ":", ""))
		defer os.Remove(out)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
		cmd.Dir = "testdata/vulnapp"
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=readonly -buildvcs=false", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			strippedErr = errors.New(err.Error() + ": " + string(b))
			return
		}
		strippedBin, strippedErr = os.ReadFile(out)
	})
	require.NoError(t, strippedErr)
	return strippedBin
}

// records are the real golang/vulndb records in testdata.
func records(t testing.TB) []vulndb.Record {
	t.Helper()
	f, err := os.Open("testdata/golang-vulndb.jsonl")
	require.NoError(t, err)
	defer f.Close()
	rs, err := vulndb.FromOSV(f)
	require.NoError(t, err)
	return rs
}

// setup writes both databases from the same records, scans an image holding
// vulnapp, and returns the report, the Go database and a function running
// Analyzer.VEX on them.
func setup(t *testing.T) (*report.Report, *vulndb.GoDatabase, func() *reach.Result) {
	t.Helper()
	ctx := context.Background()
	rs := records(t)
	gdb, err := vulndb.Write(ctx, t.TempDir(), rs)
	require.NoError(t, err)
	godb, err := vulndb.WriteGo(ctx, filepath.Join(t.TempDir(), "govulndb"), rs)
	require.NoError(t, err)

	img := testimage.Image(t, "amd64", testimage.Layer(t, testimage.Tar(t, testimage.File{Name: strings.TrimPrefix(appPath, "/"), Body: vulnapp(t), Mode: 0o755})))
	sb, err := sbom.New().Catalog(ctx, img)
	require.NoError(t, err)
	db, err := vuln.Open(ctx, gdb.RootDir)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	rep, err := db.Scan(ctx, sb)
	require.NoError(t, err)
	a, err := reach.New(godb.Dir)
	require.NoError(t, err)
	return rep, godb, func() *reach.Result {
		res, err := a.VEX(ctx, rep, img)
		require.NoError(t, err)
		return res
	}
}

// calledByGovulncheck runs govulncheck on its own (not through package reach) and
// returns the advisories it reports at symbol level, with their aliases, by
// advisory ID and module ("GO-2026-6612 stdlib": an advisory can name a module and
// the standard library's copy of it).
func calledByGovulncheck(t *testing.T, godb *vulndb.GoDatabase) map[string][]string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vulnapp")
	require.NoError(t, os.WriteFile(bin, vulnapp(t), 0o755))
	var out, stderr bytes.Buffer
	cmd := govulncheck.Command(context.Background(), "-mode", "binary", "-json", "-db", godb.URL(), bin)
	cmd.Stdout, cmd.Stderr, cmd.Env = &out, &stderr, []string{}
	require.NoError(t, cmd.Start())
	require.NoError(t, cmd.Wait(), stderr.String())
	aliases := map[string][]string{}
	called := map[string][]string{}
	dec := json.NewDecoder(&out)
	for {
		var m map[string]json.RawMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		if raw, ok := m["osv"]; ok {
			var o struct {
				ID      string   `json:"id"`
				Aliases []string `json:"aliases"`
			}
			require.NoError(t, json.Unmarshal(raw, &o))
			aliases[o.ID] = o.Aliases
		}
		if raw, ok := m["finding"]; ok {
			var f struct {
				OSV   string `json:"osv"`
				Trace []struct {
					Module   string `json:"module"`
					Function string `json:"function"`
				} `json:"trace"`
			}
			require.NoError(t, json.Unmarshal(raw, &f))
			if len(f.Trace) > 0 && f.Trace[0].Function != "" {
				called[f.OSV+" "+f.Trace[0].Module] = append([]string{f.OSV}, aliases[f.OSV]...)
			}
		}
	}
	return called
}

// The measurement the issue asks for: on a real binary with seven vulnerable
// modules and the real advisories, how many Go findings drop, and that none that
// govulncheck reports as called drops.
func TestVEXRealBinary(t *testing.T) {
	rep, godb, run := setup(t)
	res := run()
	require.Empty(t, res.Errors)
	require.Contains(t, res.Binaries, appPath)
	b := res.Binaries[appPath]
	assert.Equal(t, "linux", b.GOOS)
	assert.Equal(t, "amd64", b.GOARCH)
	assert.True(t, strings.HasPrefix(b.Scanner, "govulncheck@") || b.Scanner != "", b.Scanner)

	goFindings := 0
	modules := map[string]int{}
	for _, f := range rep.Findings {
		if f.Type == "go-module" {
			goFindings++
			modules[f.Package]++
		}
	}
	require.Len(t, res.Decisions, goFindings)
	// golang.org/x/sys v0.31.0's only advisory, GO-2026-5024, is limited to goos
	// windows: scan/vuln does not report it for this linux/amd64 binary at all.
	assert.NotContains(t, modules, "golang.org/x/sys")
	// Without the platform limits (the same records, imports dropped, as a database
	// that cannot keep them would have it) grype reports it.
	unlimited := records(t)
	for i := range unlimited {
		unlimited[i].Imports = nil
	}
	udb, err := vulndb.Write(context.Background(), t.TempDir(), unlimited)
	require.NoError(t, err)
	usc, err := vuln.Open(context.Background(), udb.RootDir)
	require.NoError(t, err)
	defer usc.Close()
	sb, err := sbom.New().Catalog(context.Background(), testimage.Image(t, "amd64", testimage.Layer(t, testimage.Tar(t, testimage.File{Name: strings.TrimPrefix(appPath, "/"), Body: vulnapp(t), Mode: 0o755}))))
	require.NoError(t, err)
	urep, err := usc.Scan(context.Background(), sb)
	require.NoError(t, err)
	var sysIDs []string
	for _, f := range urep.Findings {
		if f.Package == "golang.org/x/sys" {
			sysIDs = append(sysIDs, f.ID)
		}
	}
	assert.Equal(t, []string{"GO-2026-5024"}, sysIDs)
	require.GreaterOrEqual(t, len(modules), 6, "vulnapp links several vulnerable modules: %v", modules)
	require.NotNil(t, res.VEX)
	assert.Len(t, res.VEX.Statements, res.Count(reach.NotInBinary))

	out := suppress.Apply(rep, time.Now(), res.VEX)
	dropped := len(rep.Findings) - len(out.Findings)
	assert.Equal(t, res.Count(reach.NotInBinary), dropped)
	assert.Greater(t, dropped, goFindings/2, "most advisories of the linked versions name code vulnapp does not link")
	assert.Greater(t, res.Count(reach.Present), 0, "vulnapp calls some vulnerable code")

	// None that govulncheck (run here on its own) reports as called is dropped.
	called := calledByGovulncheck(t, godb)
	require.NotEmpty(t, called)
	for _, s := range out.Suppressed {
		for key, names := range called {
			id, module, _ := strings.Cut(key, " ")
			if module != s.Finding.Package {
				continue
			}
			for _, n := range s.Finding.Names() {
				assert.NotContains(t, names, n, "%s (%s) dropped, but govulncheck reports %s as called", s.Finding.ID, s.Finding.Package, id)
			}
		}
		assert.Equal(t, "vex urn:shipkit:reach:"+rep.Target, s.By)
		assert.Contains(t, s.Reason, "not_affected: vulnerable_code_not_in_execute_path (")
	}
	// Every advisory govulncheck reports as called is still a finding.
	remaining := map[string]bool{}
	for _, f := range out.Findings {
		for _, n := range f.Names() {
			remaining[n] = true
		}
	}
	calledIDs := map[string]bool{}
	for key := range called {
		id, _, _ := strings.Cut(key, " ")
		calledIDs[id] = true
		assert.True(t, remaining[id], "%s is called but not in the report", key)
	}

	var present []string
	for _, d := range res.Decisions {
		if d.Verdict == reach.Present {
			present = append(present, d.Finding.ID+" "+d.Finding.Package)
		}
	}
	sort.Strings(present)
	t.Logf("Go findings %d in %d modules: %d dropped (not in the binary), %d present, %d unknown; govulncheck reports %d advisories as called (%d advisory-module pairs)",
		goFindings, len(modules), dropped, res.Count(reach.Present), res.Count(reach.Unknown), len(calledIDs), len(called))
	t.Logf("present: %v", present)
	t.Logf("modules: %v", modules)
	for _, d := range res.Decisions {
		if d.Verdict == reach.Unknown {
			t.Logf("unknown: %s %s@%s: %s", d.Finding.ID, d.Finding.Package, d.Finding.Version, d.Evidence)
		}
	}

	// The document is OpenVEX that scan/suppress reads back to the same effect.
	doc, err := reach.OpenVEX(res.VEX)
	require.NoError(t, err)
	back, err := suppress.ParseOpenVEX(doc)
	require.NoError(t, err)
	assert.Equal(t, len(out.Findings), len(suppress.Apply(rep, time.Now(), back).Findings))
	// The evidence names the binary, the module version and the vulnerable symbols.
	ev := res.VEX.Statements[0].Impact
	assert.Contains(t, ev, appPath)
	assert.Contains(t, ev, "-mode=binary")
	assert.Contains(t, ev, "none of the vulnerable symbols")
}

// Bad input and limits: a finding whose binary is not in the image, a binary over
// the size limit, a file that is not a Go binary. Each leaves its findings alone
// and is named in Errors; nothing is dropped for them.
func TestVEXBadBinaries(t *testing.T) {
	ctx := context.Background()
	rep, godb, _ := setup(t)
	var goFinding report.Finding
	for _, f := range rep.Findings {
		if f.Type == "go-module" {
			goFinding = f
			break
		}
	}
	require.NotEmpty(t, goFinding.ID)

	moved := *rep
	moved.Findings = nil
	for _, loc := range []string{"/gone/app", "/etc/notgo", appPath} {
		f := goFinding
		f.Locations = []string{loc}
		moved.Findings = append(moved.Findings, f)
	}
	img := testimage.Image(t, "amd64", testimage.Layer(t, testimage.Tar(t,
		testimage.File{Name: "etc/notgo", Body: []byte("#!/bin/sh\necho not go\n"), Mode: 0o755},
		testimage.File{Name: strings.TrimPrefix(appPath, "/"), Body: vulnapp(t), Mode: 0o755})))

	a, err := reach.New(godb.Dir, reach.WithMaxBinarySize(1<<20)) // vulnapp is larger
	require.NoError(t, err)
	res, err := a.VEX(ctx, &moved, img)
	require.NoError(t, err)
	assert.Nil(t, res.VEX)
	assert.Equal(t, 3, res.Count(reach.Unknown))
	require.Len(t, res.Errors, 3)
	assert.ErrorIs(t, res.Errors[appPath], reach.ErrTooLarge)
	assert.ErrorContains(t, res.Errors["/gone/app"], "not a regular file in the image")
	assert.ErrorContains(t, res.Errors["/etc/notgo"], "govulncheck")

	// A finding found in two binaries is dropped only if neither has the symbols:
	// here one of them cannot be read, so it stays.
	two := *rep
	two.Findings = nil
	for _, f := range rep.Findings {
		if f.Type == "go-module" {
			f.Locations = []string{appPath, "/gone/app"}
			two.Findings = append(two.Findings, f)
		}
	}
	a, err = reach.New(godb.Dir)
	require.NoError(t, err)
	res, err = a.VEX(ctx, &two, img)
	require.NoError(t, err)
	assert.Nil(t, res.VEX)
	assert.Zero(t, res.Count(reach.NotInBinary))

	// A cancelled context is an error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = a.VEX(cctx, rep, img)
	require.ErrorIs(t, err, context.Canceled)
}

// A stripped binary has no symbol table: govulncheck cannot tell which symbols
// are in it and reports every advisory at symbol level, so nothing is dropped.
func TestVEXStrippedBinary(t *testing.T) {
	ctx := context.Background()
	rep, godb, _ := setup(t)
	img := testimage.Image(t, "amd64", testimage.Layer(t, testimage.Tar(t, testimage.File{Name: strings.TrimPrefix(appPath, "/"), Body: strippedApp(t), Mode: 0o755})))
	a, err := reach.New(godb.Dir)
	require.NoError(t, err)
	res, err := a.VEX(ctx, rep, img)
	require.NoError(t, err)
	require.Empty(t, res.Errors)
	assert.Nil(t, res.VEX)
	assert.Zero(t, res.Count(reach.NotInBinary))
	assert.Greater(t, res.Count(reach.Present), 40)
}

// A statement names the image and the purl, not the binary, and scan/suppress
// matches it on the advisory and the purl only. Two binaries linking the same
// module version give two findings it covers alike, so none is written unless both
// are not in their binaries; and none for a finding without a purl.
func TestVEXSharedModule(t *testing.T) {
	ctx := context.Background()
	rep, godb, run := setup(t)
	a, err := reach.New(godb.Dir)
	require.NoError(t, err)
	scan := func(files ...testimage.File) (*report.Report, *reach.Result) {
		t.Helper()
		img := testimage.Image(t, "amd64", testimage.Layer(t, testimage.Tar(t, files...)))
		sb, err := sbom.New().Catalog(ctx, img)
		require.NoError(t, err)
		gdb, err := vulndb.Write(ctx, t.TempDir(), records(t))
		require.NoError(t, err)
		db, err := vuln.Open(ctx, gdb.RootDir)
		require.NoError(t, err)
		defer db.Close()
		r, err := db.Scan(ctx, sb)
		require.NoError(t, err)
		res, err := a.VEX(ctx, r, img)
		require.NoError(t, err)
		require.Empty(t, res.Errors)
		return r, res
	}
	// twins counts the advisory-purl pairs found in both binaries.
	twins := func(r *report.Report, p1, p2 string) int {
		at := map[string]map[string]bool{}
		for _, f := range r.Findings {
			if f.Type != "go-module" {
				continue
			}
			k := f.ID + " " + f.PURL
			if at[k] == nil {
				at[k] = map[string]bool{}
			}
			for _, l := range f.Locations {
				at[k][l] = true
			}
		}
		n := 0
		for _, locs := range at {
			if locs[p1] && locs[p2] {
				n++
			}
		}
		return n
	}

	// vulnapp (most advisories not in it) next to the same program stripped
	// (govulncheck reports every advisory at symbol level): every advisory and
	// purl of vulnapp is also present in /app/stripped, so no statement at all.
	mixed, res := scan(
		testimage.File{Name: strings.TrimPrefix(appPath, "/"), Body: vulnapp(t), Mode: 0o755},
		testimage.File{Name: "app/stripped", Body: strippedApp(t), Mode: 0o755})
	require.Greater(t, twins(mixed, appPath, "/app/stripped"), 40)
	assert.Nil(t, res.VEX)
	assert.Zero(t, res.Count(reach.NotInBinary))
	assert.Greater(t, res.Count(reach.Unknown), 20, "vulnapp's not-in-binary findings are withheld")
	assert.Len(t, suppress.Apply(mixed, time.Now(), res.VEX).Findings, len(mixed.Findings))
	withheld := 0
	for _, d := range res.Decisions {
		if d.Verdict == reach.Unknown && strings.Contains(d.Evidence, "would name only") {
			withheld++
			assert.Contains(t, d.Evidence, "/app/stripped (present)")
		}
	}
	assert.Greater(t, withheld, 20)
	t.Logf("vulnapp + stripped copy: %d Go findings, %d advisory-purl pairs in both, %d withheld, %d present, 0 statements",
		len(res.Decisions), twins(mixed, appPath, "/app/stripped"), withheld, res.Count(reach.Present))

	// The same binary twice: both not in their binaries, so the statements stand.
	same, res := scan(
		testimage.File{Name: strings.TrimPrefix(appPath, "/"), Body: vulnapp(t), Mode: 0o755},
		testimage.File{Name: "app/copy", Body: vulnapp(t), Mode: 0o755})
	require.Greater(t, twins(same, appPath, "/app/copy"), 40)
	require.NotNil(t, res.VEX)
	assert.Greater(t, res.Count(reach.NotInBinary), 20)
	assert.Equal(t, res.Count(reach.NotInBinary), len(same.Findings)-len(suppress.Apply(same, time.Now(), res.VEX).Findings))
	t.Logf("vulnapp twice: %d Go findings, %d not in binary (statements), %d present", len(res.Decisions), res.Count(reach.NotInBinary), res.Count(reach.Present))

	// Synthetic: a not-in-binary finding next to the same advisory and purl in a
	// binary that cannot be read; and one without a purl.
	base := run()
	var nib report.Finding
	for _, d := range base.Decisions {
		if d.Verdict == reach.NotInBinary && d.Finding.PURL != "" {
			nib = d.Finding
			break
		}
	}
	require.NotEmpty(t, nib.ID)
	img := testimage.Image(t, "amd64", testimage.Layer(t, testimage.Tar(t, testimage.File{Name: strings.TrimPrefix(appPath, "/"), Body: vulnapp(t), Mode: 0o755})))
	gone := nib
	gone.Locations = []string{"/gone/app"}
	r := *rep
	r.Findings = []report.Finding{nib, gone}
	res, err = a.VEX(ctx, &r, img)
	require.NoError(t, err)
	assert.Nil(t, res.VEX)
	assert.Equal(t, 2, res.Count(reach.Unknown))
	assert.Contains(t, res.Decisions[0].Evidence, "/gone/app (unknown)")
	// Alone, the same finding gets its statement (the test can fail).
	r.Findings = []report.Finding{nib}
	res, err = a.VEX(ctx, &r, img)
	require.NoError(t, err)
	require.NotNil(t, res.VEX)
	assert.Len(t, res.VEX.Statements, 1)
	// Without a purl: none.
	nopurl := nib
	nopurl.PURL = ""
	r.Findings = []report.Finding{nopurl}
	res, err = a.VEX(ctx, &r, img)
	require.NoError(t, err)
	assert.Nil(t, res.VEX)
	assert.Equal(t, 1, res.Count(reach.Unknown))
	assert.Contains(t, res.Decisions[0].Evidence, "no purl")
}

// Analyzers (and one Analyzer) run govulncheck concurrently with the same results:
// golang.org/x/vuln/scan keeps no state between runs.
func TestConcurrentFiles(t *testing.T) {
	ctx := context.Background()
	godb, err := vulndb.WriteGo(ctx, filepath.Join(t.TempDir(), "db"), records(t))
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "vulnapp")
	require.NoError(t, os.WriteFile(bin, vulnapp(t), 0o755))
	a, err := reach.New(godb.Dir)
	require.NoError(t, err)
	want, err := a.File(ctx, bin)
	require.NoError(t, err)
	require.NotEmpty(t, want.Vulns)
	var wg sync.WaitGroup
	got := make([]*reach.Binary, 4)
	errs := make([]error, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = a.File(ctx, bin)
		}()
	}
	wg.Wait()
	for i := range got {
		require.NoError(t, errs[i])
		assert.Equal(t, want, got[i])
	}
}

func TestNew(t *testing.T) {
	_, err := reach.New(t.TempDir())
	require.ErrorIs(t, err, reach.ErrNoDatabase)
	godb, err := vulndb.WriteGo(context.Background(), filepath.Join(t.TempDir(), "db"), nil)
	require.NoError(t, err)
	_, err = reach.New(godb.Dir, reach.WithMaxBinarySize(0), reach.WithMaxOutput(-1))
	require.ErrorIs(t, err, reach.ErrInvalidOption)
	assert.ErrorContains(t, err, "WithMaxBinarySize(0)")
	assert.ErrorContains(t, err, "WithMaxOutput(-1)")
	a, err := reach.New(godb.Dir)
	require.NoError(t, err)
	// A report without Go findings needs no image.
	res, err := a.VEX(context.Background(), &report.Report{Target: "sha256:abc", Findings: []report.Finding{{ID: "CVE-1", Type: "deb"}}}, nil)
	require.NoError(t, err)
	assert.Nil(t, res.VEX)
	assert.Empty(t, res.Decisions)
	_, err = a.VEX(context.Background(), nil, nil)
	require.Error(t, err)
}
