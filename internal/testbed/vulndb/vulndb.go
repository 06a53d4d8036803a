// Package vulndb holds the advisories shipkit's scan tests rely on, and writes them
// as an offline grype v6 database with the public writer, package scan/vulndb.
//
// [Fixtures] returns advisories for golang.org/x/text and for glibc on Debian 12;
// [Write] writes them (or any records) the way scan/vulndb.Write does. The types
// are scan/vulndb's, so records from either package mix.
package vulndb

import (
	"context"
	"time"

	"github.com/shipkit/shipkit/scan/vulndb"
)

// Record is one advisory as it applies to one package; see scan/vulndb.Record.
type Record = vulndb.Record

// Range is one affected version range; see scan/vulndb.Range.
type Range = vulndb.Range

// CVSS is one CVSS assessment; see scan/vulndb.CVSS.
type CVSS = vulndb.CVSS

// Database describes a written database; see scan/vulndb.Database.
type Database = vulndb.Database

// Option configures [Write]; see scan/vulndb.Option.
type Option = vulndb.Option

// WithBuildTime sets the build timestamp stored in the database; see
// scan/vulndb.WithBuildTime.
func WithBuildTime(t time.Time) Option { return vulndb.WithBuildTime(t) }

// Write writes records as a grype v6 database under root; see scan/vulndb.Write.
func Write(ctx context.Context, root string, records []Record, opts ...Option) (*Database, error) {
	return vulndb.Write(ctx, root, records, opts...)
}

// ParseOSV parses one OSV JSON document; see scan/vulndb.ParseOSV.
func ParseOSV(data []byte) ([]Record, error) { return vulndb.ParseOSV(data) }

// Fixtures returns the default advisories: two GitHub advisories for golang.org/x/text
// (GHSA-69ch-w2m2-3vjp, fixed in 0.3.8, and GHSA-ppp9-7jff-5vj2, fixed in 0.3.7) and
// CVE-2023-4911 for the glibc source package on Debian 12 (fixed in 2.36-9+deb12u3).
// The two GitHub advisories are also in testdata/ as OSV JSON. Each call returns new
// values.
func Fixtures() []Record {
	const availabilityVector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
	return []Record{
		{
			ID:          "GHSA-69ch-w2m2-3vjp",
			Aliases:     []string{"CVE-2022-32149"},
			Type:        "go-module",
			Package:     "golang.org/x/text",
			Ranges:      []Range{{Vulnerable: "< 0.3.8", FixedIn: "0.3.8"}},
			Severity:    "high",
			CVSS:        []CVSS{{Version: "3.1", Vector: availabilityVector}},
			Description: "golang.org/x/text/language Denial of service via crafted Accept-Language header",
			URLs: []string{
				"https://github.com/advisories/GHSA-69ch-w2m2-3vjp",
				"https://nvd.nist.gov/vuln/detail/CVE-2022-32149",
				"https://pkg.go.dev/vuln/GO-2022-1059",
			},
		},
		{
			ID:          "GHSA-ppp9-7jff-5vj2",
			Aliases:     []string{"CVE-2021-38561"},
			Type:        "go-module",
			Package:     "golang.org/x/text",
			Ranges:      []Range{{Vulnerable: "< 0.3.7", FixedIn: "0.3.7"}},
			Severity:    "high",
			CVSS:        []CVSS{{Version: "3.1", Vector: availabilityVector}},
			Description: "golang.org/x/text/language Out-of-bounds Read vulnerability",
			URLs: []string{
				"https://github.com/advisories/GHSA-ppp9-7jff-5vj2",
				"https://nvd.nist.gov/vuln/detail/CVE-2021-38561",
				"https://pkg.go.dev/vuln/GO-2021-0113",
			},
		},
		{
			ID:          "CVE-2023-4911",
			Type:        "deb",
			Distro:      "debian:12",
			Package:     "glibc",
			Ranges:      []Range{{Vulnerable: "< 2.36-9+deb12u3", FixedIn: "2.36-9+deb12u3"}},
			Severity:    "high",
			CVSS:        []CVSS{{Version: "3.1", Vector: "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}},
			Description: "glibc: buffer overflow in ld.so leading to privilege escalation (Looney Tunables)",
			URLs: []string{
				"https://security-tracker.debian.org/tracker/CVE-2023-4911",
				"https://www.debian.org/security/2023/dsa-5514",
			},
		},
	}
}
