package vulndb

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzFromOSV feeds arbitrary bytes to the OSV reader: no panic, and every record
// it returns is one Write accepts.
func FuzzFromOSV(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`[{"id":"DSA-1","affected":[{"package":{"ecosystem":"Debian:12","name":"glibc"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.36-9"}]}]}]}]`))
	f.Add([]byte(`{"id":"X","affected":[{"package":{"ecosystem":"Ubuntu:Pro:18.04:LTS","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"1:2.0"},{"last_affected":"1:2.5"}]}]}]}`))
	f.Add([]byte(`{"id":"GHSA-a","severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N"}],"affected":[{"package":{"ecosystem":"npm","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"limit":"2.0.0"}]}]}]}` + "\n" + `{"id":"GHSA-b","withdrawn":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := FromOSV(bytes.NewReader(data))
		if err != nil {
			if recs != nil {
				t.Fatalf("records with an error: %v", recs)
			}
			return
		}
		for i, r := range recs {
			if err := r.validate(); err != nil {
				t.Fatalf("record %d is one Write refuses: %v", i, err)
			}
		}
	})
}
