package vuln_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shipkit/shipkit/internal/testbed/vulndb"
	"github.com/shipkit/shipkit/scan/vuln"
)

// Open a grype v6 database on local disk once (here one written from fixture
// records, as an air-gapped user would), then scan SBOMs with it.
func ExampleOpen() {
	root, err := os.MkdirTemp("", "vuln-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)
	if _, err := vulndb.Write(context.Background(), root, vulndb.Fixtures()); err != nil {
		fmt.Println(err)
		return
	}

	s, err := vuln.Open(context.Background(), root, vuln.WithMaxAge(5*24*time.Hour))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	fmt.Println("schema", s.Status().Schema[:3])

	r, err := s.Scan(context.Background(), fakeSBOM("v0.3.6", true)) // e.g. from sbom.Catalog
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range r.Findings {
		fmt.Println(f.ID, f.Package, f.Version, "fixed in", f.FixedIn, f.Severity)
	}
	// Output:
	// schema v6.
	// GHSA-69ch-w2m2-3vjp golang.org/x/text v0.3.6 fixed in [0.3.8] High
	// GHSA-ppp9-7jff-5vj2 golang.org/x/text v0.3.6 fixed in [0.3.7] High
	// CVE-2023-4911 libc6 2.36-9+deb12u2 fixed in [2.36-9+deb12u3] High
}

// Install a database brought over to an air-gapped machine, as `grype db import`
// does, then open it. Here the file is a bare vulnerability.db written from fixture
// records; a database archive (vulnerability-db_v6….tar.zst) is imported the same way.
func ExampleImport() {
	tmp, err := os.MkdirTemp("", "vuln-import-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(tmp)
	feed, err := vulndb.Write(context.Background(), filepath.Join(tmp, "feed"), vulndb.Fixtures())
	if err != nil {
		fmt.Println(err)
		return
	}

	root := filepath.Join(tmp, "grype-db")
	if err := vuln.Import(context.Background(), feed.Path, root); err != nil {
		fmt.Println(err)
		return
	}
	s, err := vuln.Open(context.Background(), root)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	fmt.Println(s.Status().From)
	// Output:
	// manual import
}
