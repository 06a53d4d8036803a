package vulndb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	govulncheck "golang.org/x/vuln/scan"

	"github.com/shipkit/shipkit/scan/vulndb"
)

// lastAffectedFeed has OSV ranges closed by last_affected (inclusive), on a
// release and on a pre-release, one left open after them, and a module whose
// only range ends at last_affected.
const lastAffectedFeed = `
{"id":"GO-TEST-0001","summary":"last_affected on releases and pre-releases",
 "affected":[{"package":{"ecosystem":"Go","name":"example.com/last"},
  "ranges":[{"type":"SEMVER","events":[
   {"introduced":"1.1.0"},{"last_affected":"1.2.3"},
   {"introduced":"2.0.0-rc.1"},{"last_affected":"2.0.0-rc.2"},
   {"introduced":"3.0.0"}]}]}]}
{"id":"GO-TEST-0002","summary":"only last_affected",
 "affected":[{"package":{"ecosystem":"Go","name":"example.com/only"},
  "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"last_affected":"0.5.0"}]}]}]}`

// queryGovulncheck asks govulncheck's own query mode, against the database at
// url, which advisories affect module@version.
func queryGovulncheck(t *testing.T, url, module, version string) []string {
	t.Helper()
	var out, stderr bytes.Buffer
	cmd := govulncheck.Command(context.Background(), "-mode", "query", "-format", "json", "-db", url, module+"@"+version)
	cmd.Stdout, cmd.Stderr, cmd.Env = &out, &stderr, []string{}
	require.NoError(t, cmd.Start())
	require.NoError(t, cmd.Wait(), stderr.String())
	ids := []string{}
	dec := json.NewDecoder(&out)
	for {
		var m struct {
			OSV *struct{ ID string } `json:"osv"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		if m.OSV != nil {
			ids = append(ids, m.OSV.ID)
		}
	}
	return ids
}

// WriteGo writes last_affected ranges so that govulncheck finds the advisory in
// exactly the versions OSV says are affected: the last affected version itself,
// its pre-releases and build variants, and not the next pre-release, the
// pseudo-versions after it or anything later (until a later introduced).
func TestWriteGoLastAffected(t *testing.T) {
	rs, err := vulndb.FromOSV(strings.NewReader(lastAffectedFeed))
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "db")
	db, err := vulndb.WriteGo(context.Background(), dir, rs)
	require.NoError(t, err)
	require.Equal(t, 2, db.Entries)

	tests := []struct {
		module, version string
		affected        bool
	}{
		{"example.com/last", "v1.0.9", false},
		{"example.com/last", "v1.1.0-rc.1", false},
		{"example.com/last", "v1.1.0", true},
		{"example.com/last", "v1.2.3-rc.1", true},
		{"example.com/last", "v1.2.3", true},
		{"example.com/last", "v1.2.3+build.7", true},
		{"example.com/last", "v1.2.4-0", false},
		{"example.com/last", "v1.2.4-0.20240101000000-abcdefabcdef", false},
		{"example.com/last", "v1.2.4", false},
		{"example.com/last", "v1.9.9", false},
		{"example.com/last", "v2.0.0-rc.1", true},
		{"example.com/last", "v2.0.0-rc.2", true},
		{"example.com/last", "v2.0.0-rc.2.1", false},
		{"example.com/last", "v2.0.0-rc.10", false},
		{"example.com/last", "v2.0.0", false},
		{"example.com/last", "v3.0.0", true},
		{"example.com/last", "v3.5.0", true},
		{"example.com/only", "v0.0.0-20200101000000-abcdefabcdef", true},
		{"example.com/only", "v0.5.0", true},
		{"example.com/only", "v0.5.1-0.20240101000000-abcdefabcdef", false},
		{"example.com/only", "v0.5.1", false},
	}
	for _, tt := range tests {
		ids := queryGovulncheck(t, db.URL(), tt.module, tt.version)
		if tt.affected {
			assert.Len(t, ids, 1, "%s@%s is affected", tt.module, tt.version)
		} else {
			assert.Empty(t, ids, "%s@%s is not affected", tt.module, tt.version)
		}
	}

	// The entry says it the way govulncheck's format can: fixed at the least
	// version after the last affected one.
	var entry struct {
		Affected []struct {
			Ranges []struct{ Events []map[string]string }
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "ID", "GO-TEST-0001.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &entry))
	require.Len(t, entry.Affected, 1)
	var events [][]map[string]string
	for _, r := range entry.Affected[0].Ranges {
		events = append(events, r.Events)
	}
	assert.Equal(t, [][]map[string]string{
		{{"introduced": "1.1.0"}, {"fixed": "1.2.4-0"}},
		{{"introduced": "2.0.0-rc.1"}, {"fixed": "2.0.0-rc.2.0"}},
		{{"introduced": "3.0.0"}},
	}, events)
}

// A record whose range holds no version is left out, not written as an entry
// without ranges (which govulncheck reads as every version).
func TestWriteGoEmptyRange(t *testing.T) {
	rs := []vulndb.Record{{ID: "GO-EMPTY", Type: "go-module", Package: "example.com/m",
		Ranges: []vulndb.Range{{Vulnerable: ">= 2.0.0, < 1.0.0"}}}}
	db, err := vulndb.WriteGo(context.Background(), filepath.Join(t.TempDir(), "db"), rs)
	require.NoError(t, err)
	assert.Zero(t, db.Entries)
	assert.Empty(t, queryGovulncheck(t, db.URL(), "example.com/m", "v1.5.0"))
}

// A Go range govulncheck's format cannot say exactly is refused with
// ErrGoRange, naming the record, and nothing is written.
func TestWriteGoInexpressibleRange(t *testing.T) {
	for _, vulnerable := range []string{"!= 1.2.0", "<= 1.2.3.4", ">= 1.0.0, < 1.2.x"} {
		rs := []vulndb.Record{{ID: "GO-X", Type: "go-module", Package: "example.com/m",
			Ranges: []vulndb.Range{{Vulnerable: vulnerable}}}}
		dir := filepath.Join(t.TempDir(), "db")
		_, err := vulndb.WriteGo(context.Background(), dir, rs)
		require.Error(t, err, vulnerable)
		assert.ErrorContains(t, err, "GO-X", vulnerable)
		if !assert.ErrorIs(t, err, vulndb.ErrGoRange, vulnerable) {
			continue
		}
		_, err = os.Stat(dir)
		assert.ErrorIs(t, err, os.ErrNotExist, "nothing is written for %q", vulnerable)
	}
}
