package vulndb_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/scan/vulndb"
)

func TestParseOSVRanges(t *testing.T) {
	tests := []struct {
		name   string
		events string
		want   []vulndb.Range
	}{
		{"introduced 0, fixed", `[{"introduced":"0"},{"fixed":"1.2.0"}]`,
			[]vulndb.Range{{Vulnerable: "< 1.2.0", FixedIn: "1.2.0"}}},
		{"two intervals", `[{"introduced":"1.0.0"},{"fixed":"1.0.5"},{"introduced":"2.0.0"},{"fixed":"2.1.0"}]`,
			[]vulndb.Range{{Vulnerable: ">= 1.0.0, < 1.0.5", FixedIn: "1.0.5"}, {Vulnerable: ">= 2.0.0, < 2.1.0", FixedIn: "2.1.0"}}},
		{"last affected", `[{"introduced":"0"},{"last_affected":"3.1.4"}]`,
			[]vulndb.Range{{Vulnerable: "<= 3.1.4"}}},
		{"open ended", `[{"introduced":"4.0.0"}]`,
			[]vulndb.Range{{Vulnerable: ">= 4.0.0"}}},
		{"every version", `[{"introduced":"0"}]`,
			[]vulndb.Range{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := `{"id":"GHSA-test","affected":[{"package":{"ecosystem":"npm","name":"left-pad"},` +
				`"ranges":[{"type":"SEMVER","events":` + tt.events + `}]}]}`
			got, err := vulndb.ParseOSV([]byte(doc))
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, "npm", got[0].Type)
			assert.Equal(t, tt.want, got[0].Ranges)
		})
	}
}

func TestParseOSVDistro(t *testing.T) {
	doc := `{"id":"DSA-5514-1","aliases":["CVE-2023-4911"],"summary":"glibc security update",
		"affected":[{"package":{"ecosystem":"Debian:12","name":"glibc"},
		"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.36-9+deb12u3"}]}]},
		{"package":{"ecosystem":"Debian:11","name":"glibc"},
		"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.31-13+deb11u7"}]}]}]}`
	got, err := vulndb.ParseOSV([]byte(doc))
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "deb", got[0].Type)
	assert.Equal(t, "debian:12", got[0].Distro)
	assert.Equal(t, []vulndb.Range{{Vulnerable: "< 2.36-9+deb12u3", FixedIn: "2.36-9+deb12u3"}}, got[0].Ranges)
	assert.Equal(t, "debian:11", got[1].Distro)
	assert.Equal(t, "glibc security update", got[1].Description)
}

func TestParseOSVErrors(t *testing.T) {
	const pkg = `"package":{"ecosystem":"Go","name":"golang.org/x/text"}`
	const semver = `"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.3.8"}]}]`
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{"not JSON", `{"id":`, "parse OSV JSON"},
		{"no id", `{"affected":[{` + pkg + `,` + semver + `}]}`, "record has no id"},
		{"no affected", `{"id":"GHSA-x"}`, "GHSA-x: no affected packages"},
		{"unknown ecosystem", `{"id":"GHSA-x","affected":[{"package":{"ecosystem":"Hackage","name":"aeson"},` + semver + `}]}`,
			`unsupported OSV ecosystem "Hackage"`},
		{"distro without release", `{"id":"GHSA-x","affected":[{"package":{"ecosystem":"Debian","name":"glibc"},` + semver + `}]}`,
			`OSV ecosystem "Debian" has no release`},
		{"no package name", `{"id":"GHSA-x","affected":[{"package":{"ecosystem":"Go"},` + semver + `}]}`,
			"affected[0]: package has no name"},
		{"only git ranges", `{"id":"GHSA-x","affected":[{` + pkg + `,"ranges":[{"type":"GIT","events":[{"introduced":"abc"}]}]}]}`,
			"no SEMVER or ECOSYSTEM range"},
		{"fixed before introduced", `{"id":"GHSA-x","affected":[{` + pkg + `,"ranges":[{"type":"SEMVER","events":[{"fixed":"1.0"}]}]}]}`,
			`fixed "1.0" without introduced`},
		{"unknown event", `{"id":"GHSA-x","affected":[{` + pkg + `,"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"patched":"1.0"}]}]}]}`,
			`unknown event "patched"`},
		{"bad severity", `{"id":"GHSA-x","database_specific":{"severity":"URGENT"},"affected":[{` + pkg + `,` + semver + `}]}`,
			`unknown severity "URGENT"`},
		{"bad CVSS", `{"id":"GHSA-x","severity":[{"type":"CVSS_V3","score":"7.5"}],"affected":[{` + pkg + `,` + semver + `}]}`,
			`CVSS_V3 score "7.5" is not a CVSS vector`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vulndb.ParseOSV([]byte(tt.doc))
			require.Error(t, err)
			assert.Nil(t, got)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestFromOSV(t *testing.T) {
	doc := func(id, pkg string) string {
		return `{"id":"` + id + `","affected":[{"package":{"ecosystem":"Go","name":"` + pkg + `"},` +
			`"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]}]}`
	}
	withdrawn := `{"id":"GHSA-gone","withdrawn":"2024-01-01T00:00:00Z","affected":[]}`
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"one document", doc("GHSA-a", "example.com/a"), []string{"GHSA-a"}},
		{"JSON lines", doc("GHSA-a", "example.com/a") + "\n" + doc("GHSA-b", "example.com/b") + "\n", []string{"GHSA-a", "GHSA-b"}},
		{"concatenated", doc("GHSA-a", "example.com/a") + doc("GHSA-b", "example.com/b"), []string{"GHSA-a", "GHSA-b"}},
		{"array", " [" + doc("GHSA-a", "example.com/a") + "," + withdrawn + "," + doc("GHSA-b", "example.com/b") + "]\n", []string{"GHSA-a", "GHSA-b"}},
		{"withdrawn only", withdrawn, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vulndb.FromOSV(strings.NewReader(tt.input))
			require.NoError(t, err)
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			assert.Equal(t, tt.want, ids)
		})
	}
}

func TestFromOSVErrors(t *testing.T) {
	good := `{"id":"GHSA-a","affected":[{"package":{"ecosystem":"Go","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`
	tests := []struct{ name, input, wantErr string }{
		{"empty", " \n", "parse OSV: no document"},
		{"truncated second document", good + `{"id":"GHSA-b","aff`, "parse OSV JSON document 1"},
		{"bad second document", good + `{"id":"GHSA-b","affected":[]}`, "OSV document 1: parse OSV GHSA-b: no affected packages"},
		{"data after array", "[" + good + "] {}", "data after the JSON array"},
		{"array of non-objects", `[1]`, "parse OSV JSON"},
		{"severity not a string", `{"id":"GHSA-a","database_specific":{"severity":5},"affected":[{"package":{"ecosystem":"Go","name":"a"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`,
			"database_specific.severity is not a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := vulndb.FromOSV(strings.NewReader(tt.input))
			require.Error(t, err)
			assert.Nil(t, got, "a bad feed is not half loaded")
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestFromOSVDistroReleases(t *testing.T) {
	tests := []struct{ ecosystem, typ, distro string }{
		{"Debian:12", "deb", "debian:12"},
		{"Ubuntu:22.04:LTS", "deb", "ubuntu:22.04"},
		{"Ubuntu:Pro:18.04:LTS", "deb", "ubuntu:18.04"},
		{"Alpine:v3.18", "apk", "alpine:3.18"},
	}
	for _, tt := range tests {
		t.Run(tt.ecosystem, func(t *testing.T) {
			doc := `{"id":"CVE-2024-0001","affected":[{"package":{"ecosystem":"` + tt.ecosystem + `","name":"openssl"},` +
				`"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.13-1"}]}]}]}`
			got, err := vulndb.FromOSV(strings.NewReader(doc))
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, tt.typ, got[0].Type)
			assert.Equal(t, tt.distro, got[0].Distro)
		})
	}
}
