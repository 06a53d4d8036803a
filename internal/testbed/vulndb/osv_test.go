package vulndb_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/internal/testbed/vulndb"
)

func TestParseOSVFixtures(t *testing.T) {
	fixtures := map[string]vulndb.Record{}
	for _, r := range vulndb.Fixtures() {
		fixtures[r.ID] = r
	}
	files, err := filepath.Glob(filepath.Join("testdata", "GHSA-*.json"))
	require.NoError(t, err)
	require.Len(t, files, 2)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			got, err := vulndb.ParseOSV(data)
			require.NoError(t, err)
			require.Len(t, got, 1)
			want, ok := fixtures[got[0].ID]
			require.True(t, ok, "no fixture %s", got[0].ID)
			assert.Equal(t, want, got[0])
		})
	}
}

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
