package vuln

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
	"testing"

	"github.com/anchore/syft/syft/linux"
	syftpkg "github.com/anchore/syft/syft/pkg"
	syftsbom "github.com/anchore/syft/syft/sbom"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed/vulndb"
	"github.com/shipkit/shipkit/scan"
)

// memoRecords are the test bed's advisories plus one for each distro family the
// memo's lookups resolve differently: another Debian release, RHEL (which Rocky
// aliases to), Alpine (major.minor) and Ubuntu (codename).
func memoRecords() []vulndb.Record {
	return append(vulndb.Fixtures(),
		vulndb.Record{ID: "CVE-2023-0001", Type: "deb", Distro: "debian:11", Package: "glibc", Severity: "medium",
			Ranges: []vulndb.Range{{FixedIn: "2.31-13+deb11u7"}}, URLs: []string{"https://security-tracker.debian.org/tracker/CVE-2023-0001"}},
		vulndb.Record{ID: "CVE-2023-0002", Type: "rpm", Distro: "rhel:9", Package: "openssl", Severity: "high",
			Ranges: []vulndb.Range{{FixedIn: "1:3.0.7-25.el9"}}, URLs: []string{"https://access.redhat.com/security/cve/CVE-2023-0002"}},
		vulndb.Record{ID: "CVE-2023-0003", Type: "apk", Distro: "alpine:3.18", Package: "musl", Severity: "low",
			Ranges: []vulndb.Range{{FixedIn: "1.2.4-r2"}}, URLs: []string{"https://security.alpinelinux.org/vuln/CVE-2023-0003"}},
		vulndb.Record{ID: "CVE-2023-0004", Type: "deb", Distro: "ubuntu:22.04", Package: "openssl", Severity: "medium",
			Ranges: []vulndb.Range{{FixedIn: "3.0.2-0ubuntu1.12"}}, URLs: []string{"https://ubuntu.com/security/CVE-2023-0004"}},
	)
}

// memoSBOM is an SBOM of one image of the release rel with pkgs and n packages
// of its own (no advisory names them: each costs the distro lookups only).
func memoSBOM(i int, rel *linux.Release, n int, pkgs ...syftpkg.Package) *scan.SBOM {
	c := syftpkg.NewCollection()
	for k := range n {
		name := fmt.Sprintf("own%d-%d", i, k)
		p := syftpkg.Package{Name: name, Version: "1.0-1", Type: syftpkg.DebPkg,
			Metadata: syftpkg.DpkgDBEntry{Package: name, Version: "1.0-1", Architecture: "amd64"}}
		if rel != nil && rel.ID == "rocky" {
			p = syftpkg.Package{Name: name, Version: "1.0-1.el9", Type: syftpkg.RpmPkg,
				Metadata: syftpkg.RpmDBEntry{Name: name, Version: "1.0", Release: "1.el9", Arch: "x86_64"}}
		}
		if rel != nil && rel.ID == "alpine" {
			p = syftpkg.Package{Name: name, Version: "1.0-r0", Type: syftpkg.ApkPkg,
				Metadata: syftpkg.ApkDBEntry{Package: name, Version: "1.0-r0", Architecture: "x86_64"}}
		}
		pkgs = append(pkgs, p)
	}
	for _, p := range pkgs {
		p.SetID()
		c.Add(p)
	}
	h, _ := v1.NewHash(fmt.Sprintf("sha256:%064x", i+1))
	return scan.NewSBOM(h, &v1.Platform{OS: "linux", Architecture: "amd64"},
		syftsbom.SBOM{Artifacts: syftsbom.Artifacts{Packages: c, LinuxDistribution: rel}})
}

// memoSBOMs are images of several distros, some aliased (Raspbian to Debian,
// Rocky to RHEL), with packages of their own and packages with findings, and a
// distro-less image of Go modules; the Debian 12 image comes twice, with other
// packages of its own the second time.
func memoSBOMs() (sbs []*scan.SBOM, withFindings []int) {
	libc6 := func(v string) syftpkg.Package {
		return syftpkg.Package{Name: "libc6", Version: v, Type: syftpkg.DebPkg,
			Metadata: syftpkg.DpkgDBEntry{Package: "libc6", Source: "glibc", Version: v, Architecture: "amd64"}}
	}
	bookworm := &linux.Release{ID: "debian", VersionID: "12", VersionCodename: "bookworm"}
	add := func(s *scan.SBOM, findings bool) {
		if findings {
			withFindings = append(withFindings, len(sbs))
		}
		sbs = append(sbs, s)
	}
	add(memoSBOM(0, bookworm, 30, libc6("2.36-9+deb12u2")), true)
	add(memoSBOM(1, &linux.Release{ID: "raspbian", VersionID: "12", VersionCodename: "bookworm"}, 10, libc6("2.36-9+deb12u2")), true)
	add(memoSBOM(2, &linux.Release{ID: "debian", VersionID: "11", VersionCodename: "bullseye"}, 10, libc6("2.31-13+deb11u5")), true)
	add(memoSBOM(3, &linux.Release{ID: "rocky", VersionID: "9.3"}, 10, syftpkg.Package{Name: "openssl", Version: "1:3.0.7-24.el9", Type: syftpkg.RpmPkg,
		Metadata: syftpkg.RpmDBEntry{Name: "openssl", Epoch: intPtr(1), Version: "3.0.7", Release: "24.el9", Arch: "x86_64", SourceRpm: "openssl-3.0.7-24.el9.src.rpm"}}), true)
	add(memoSBOM(4, &linux.Release{ID: "alpine", VersionID: "3.18.4"}, 10, syftpkg.Package{Name: "musl", Version: "1.2.4-r1", Type: syftpkg.ApkPkg,
		Metadata: syftpkg.ApkDBEntry{Package: "musl", OriginPackage: "musl", Version: "1.2.4-r1", Architecture: "x86_64"}}), true)
	add(memoSBOM(5, &linux.Release{ID: "ubuntu", VersionID: "22.04", VersionCodename: "jammy"}, 10, syftpkg.Package{Name: "libssl3", Version: "3.0.2-0ubuntu1.10", Type: syftpkg.DebPkg,
		Metadata: syftpkg.DpkgDBEntry{Package: "libssl3", Source: "openssl", Version: "3.0.2-0ubuntu1.10", Architecture: "amd64"}}), true)
	add(memoSBOM(6, nil, 0, syftpkg.Package{Name: "golang.org/x/text", Version: "v0.3.6", Type: syftpkg.GoModulePkg,
		Language: syftpkg.Go, PURL: "pkg:golang/golang.org/x/text@v0.3.6"}), true)
	add(memoSBOM(7, bookworm, 30, libc6("2.36-9+deb12u3")), false)
	add(memoSBOM(8, bookworm, 30, libc6("2.36-9+deb12u1")), true)
	return sbs, withFindings
}

func intPtr(i int) *int { return &i }

func withGrypeLoader() Option { return func(c *config) { c.grypeLoader = true } }

func withMemoBounds(entries, rows int) Option {
	return func(c *config) { c.memoEntries, c.memoRows = entries, rows }
}

// freshReports scans each SBOM with a database of its own, opened by grype's own
// loader: what grype gives, with nothing remembered between images.
func freshReports(t *testing.T, root string, sbs []*scan.SBOM) []*scan.Report {
	t.Helper()
	out := make([]*scan.Report, len(sbs))
	for i, sb := range sbs {
		db, err := Open(context.Background(), root, withGrypeLoader())
		require.NoError(t, err)
		_, memo := db.closer.(*store)
		require.False(t, memo, "the reference must not go through the memo")
		out[i], err = db.Scan(context.Background(), sb)
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
	return out
}

func memoOf(t *testing.T, db *DB) *lookupMemo {
	t.Helper()
	s, ok := db.closer.(*store)
	require.True(t, ok, "Open goes through loadStore")
	require.NotNil(t, s.memo, "grype's store exposes its gorm handle")
	return s.memo
}

// TestLookupMemoFindings: one DB scanning images of several distros one after
// another, and another scanning them four at a time, both remembering the
// lookups, give exactly the findings of a fresh grype-loaded database per image.
func TestLookupMemoFindings(t *testing.T) {
	root := writeMemoDB(t)
	sbs, withFindings := memoSBOMs()
	want := freshReports(t, root, sbs)
	for _, i := range withFindings {
		require.NotEmpty(t, want[i].Findings, "image %d: the reference finds nothing; the test would prove nothing", i)
	}
	require.Empty(t, want[7].Findings, "libc6 2.36-9+deb12u3 is fixed")

	for _, n := range []int{1, 4} {
		db, err := Open(context.Background(), root, WithConcurrency(n))
		require.NoError(t, err)
		got, err := db.ScanAll(context.Background(), sbs)
		require.NoError(t, err)
		// Again: now every lookup is remembered (the match cache answers the
		// packages seen before, so scan new ones of the same distros).
		again, err := db.Scan(context.Background(), memoSBOM(9, &linux.Release{ID: "raspbian", VersionID: "12", VersionCodename: "bookworm"}, 5, sbs[1].Syft().Artifacts.Packages.Sorted()...))
		require.NoError(t, err)
		for i := range sbs {
			assert.Equal(t, want[i].Findings, got[i].Findings, "concurrency %d, image %d", n, i)
		}
		assert.Equal(t, want[1].Findings, again.Findings, "concurrency %d, remembered lookups", n)
		m := memoOf(t, db)
		assert.Positive(t, m.len(), "lookups remembered")
		assert.Greater(t, m.hits.Load(), int64(len(sbs)), "lookups answered from the memo")
		require.NoError(t, db.Close())
	}
}

// TestLookupMemoBounded: the memo keeps no more results than its bounds allow,
// in number and in rows, and a lookup past them still gives the same findings.
func TestLookupMemoBounded(t *testing.T) {
	root := writeMemoDB(t)
	sbs, _ := memoSBOMs()
	want := freshReports(t, root, sbs)

	unbounded, err := Open(context.Background(), root)
	require.NoError(t, err)
	_, err = unbounded.ScanAll(context.Background(), sbs)
	require.NoError(t, err)
	all := memoOf(t, unbounded)
	require.Greater(t, all.len(), 3, "the scans make more than 3 distinct lookups")
	many := 0
	for _, r := range all.entries {
		if len(r.rows) > 1 {
			many++
		}
	}
	require.Positive(t, many, "some lookups give more than one row")
	require.NoError(t, unbounded.Close())

	db, err := Open(context.Background(), root, withMemoBounds(3, 1))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	got, err := db.ScanAll(context.Background(), sbs)
	require.NoError(t, err)
	m := memoOf(t, db)
	assert.Equal(t, 3, m.len(), "at most 3 results remembered")
	for key, r := range m.entries {
		assert.LessOrEqual(t, len(r.rows), 1, "a result of more rows than the bound was remembered: %s", key)
	}
	for i := range sbs {
		assert.Equal(t, want[i].Findings, got[i].Findings, "image %d", i)
	}
}

func writeMemoDB(t *testing.T) string {
	t.Helper()
	db, err := vulndb.Write(context.Background(), t.TempDir(), memoRecords())
	require.NoError(t, err)
	return db.RootDir
}

// TestLookupMemoByteBudget: the memo holds no more bytes than its budget (the
// sizes of the values it keeps, not a count of rows): a result that would take
// it past the budget is not remembered, and is answered by SQLite with the same
// findings.
func TestLookupMemoByteBudget(t *testing.T) {
	root := writeMemoDB(t)
	sbs, _ := memoSBOMs()
	want := freshReports(t, root, sbs)

	unbounded, err := Open(context.Background(), root)
	require.NoError(t, err)
	_, err = unbounded.ScanAll(context.Background(), sbs)
	require.NoError(t, err)
	all := memoOf(t, unbounded)
	var largest string
	var total int64
	for key, r := range all.entries {
		total += r.size()
		if largest == "" || r.size() > all.entries[largest].size() {
			largest = key
		}
	}
	assert.Equal(t, total, all.bytes, "the memo counts the bytes it holds")
	assert.LessOrEqual(t, all.bytes, int64(maxLookupBytes))
	budget := all.entries[largest].size() - 1
	require.Positive(t, budget)
	require.Less(t, budget, total, "the budget leaves something out")
	require.NoError(t, unbounded.Close())

	db, err := Open(context.Background(), root)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	m := memoOf(t, db)
	m.mu.Lock()
	m.maxBytes, m.entries, m.bytes = budget, map[string]*lookupResult{}, 0
	m.mu.Unlock()
	got, err := db.ScanAll(context.Background(), sbs)
	require.NoError(t, err)
	var held int64
	for _, r := range m.entries {
		held += r.size()
	}
	assert.Equal(t, held, m.bytes)
	assert.LessOrEqual(t, m.bytes, budget, "no more bytes than the budget")
	assert.NotContains(t, m.entries, largest, "a result larger than the budget is not remembered")
	assert.Positive(t, m.len(), "smaller results still are")
	for i := range sbs {
		assert.Equal(t, want[i].Findings, got[i].Findings, "image %d", i)
	}
}

// A result's size counts its text and bytes, so one long text column weighs
// more than many short ones.
func TestLookupResultSize(t *testing.T) {
	long := &lookupResult{columns: []string{"c"}, types: []string{"TEXT"}, rows: [][]driver.Value{{strings.Repeat("x", 1<<20)}}}
	short := &lookupResult{columns: []string{"c"}, types: []string{"TEXT"}, rows: [][]driver.Value{{"a"}, {[]byte("b")}, {int64(1)}, {nil}}}
	assert.Equal(t, int64(1+4+valueOverhead+1<<20), long.size())
	assert.Equal(t, int64(1+4+4*valueOverhead+2), short.size())
}
