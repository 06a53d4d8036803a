package vuln

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	sqlite "github.com/glebarez/go-sqlite"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// producedRows counts the rows SQLite has produced for the view of
// rowCountingDB: its function shipkit_memo_test_row is called once per row.
var (
	producedRows     atomic.Int64
	registerRowCount sync.Once
)

// rowCountingDB is a SQLite database whose `providers` (a lookup table of the
// memo) is a view of n rows, each with a text and a blob, that counts in
// producedRows every row SQLite steps to.
func rowCountingDB(t *testing.T, n int) *sql.DB {
	t.Helper()
	registerRowCount.Do(func() {
		require.NoError(t, sqlite.RegisterScalarFunction("shipkit_memo_test_row", 1,
			func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
				producedRows.Add(1)
				return args[0], nil
			}))
	})
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "rows.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, db.Close()) })
	_, err = db.Exec("CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
	require.NoError(t, err)
	for i := 1; i <= n; i++ {
		_, err = db.Exec("INSERT INTO big VALUES (?, ?, ?)", i, fmt.Sprintf("provider-%d", i), []byte{byte(i), byte(i >> 8)})
		require.NoError(t, err)
	}
	_, err = db.Exec("CREATE VIEW providers AS SELECT id, name, data, shipkit_memo_test_row(id) AS seen FROM big")
	require.NoError(t, err)
	return db
}

// allRows reads every row of rows as the driver's values, and closes it.
func allRows(t *testing.T, rows *sql.Rows) [][]any {
	t.Helper()
	defer func() { require.NoError(t, rows.Close()) }()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		out = append(out, vals)
	}
	require.NoError(t, rows.Err())
	return out
}

// TestLookupMemoRowBound: a lookup whose result has more rows than the memo's
// bound is answered with exactly SQLite's rows, is not remembered, and never
// makes the memo read more than the bound (and the row that shows the bound is
// passed) before the caller asks for them; a result within the bound is
// remembered and answered again without SQLite.
func TestLookupMemoRowBound(t *testing.T) {
	const n, bound = 1000, 16
	db := rowCountingDB(t, n)
	ctx := context.Background()
	const large = "SELECT * FROM `providers` WHERE id > ?"
	rows, err := db.QueryContext(ctx, large, 0)
	require.NoError(t, err)
	want := allRows(t, rows)
	require.Len(t, want, n)

	m := newLookupMemo(db, 10, bound)
	t.Cleanup(func() { assert.NoError(t, m.Close()) })
	before := producedRows.Load()
	rows, err = m.QueryContext(ctx, large, 0)
	require.NoError(t, err)
	read := producedRows.Load() - before
	t.Logf("SQLite produced %d of %d rows before the caller read one (bound %d)", read, n, bound)
	assert.LessOrEqual(t, read, int64(bound+1), "rows read before the caller asked for them")
	assert.Equal(t, want, allRows(t, rows), "the large result as SQLite gives it")
	assert.Equal(t, 0, m.len(), "a result past the row bound is not remembered")
	assert.Zero(t, db.Stats().InUse, "the passed-through rows release their connection")

	// Closing a passed-through result early releases SQLite's rows too.
	rows, err = m.QueryContext(ctx, large, 0)
	require.NoError(t, err)
	require.True(t, rows.Next())
	require.NoError(t, rows.Close())
	assert.Zero(t, db.Stats().InUse, "an abandoned pass-through releases its connection")

	const small = "SELECT * FROM `providers` WHERE id <= ?"
	rows, err = m.QueryContext(ctx, small, bound)
	require.NoError(t, err)
	first := allRows(t, rows)
	assert.Equal(t, want[:bound], first)
	assert.Equal(t, 1, m.len(), "a result within the bound is remembered")
	before = producedRows.Load()
	rows, err = m.QueryContext(ctx, small, bound)
	require.NoError(t, err)
	again := allRows(t, rows)
	assert.Equal(t, first, again)
	assert.Equal(t, int64(1), m.hits.Load())
	assert.Zero(t, producedRows.Load()-before, "a remembered result is not read from SQLite")
	for key, r := range m.entries {
		assert.LessOrEqual(t, len(r.rows), bound, "remembered past the bound: %s", key)
	}
}
