package vuln

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"gorm.io/gorm"
)

// Bounds of a DB's lookupMemo: how many distinct queries it remembers, the
// most rows a remembered result may have, and the most bytes all remembered
// results may hold (their values' sizes, see lookupResult.size: the KEV and CWE
// rows carry text columns of any length, so rows alone do not bound memory). A
// query past any bound is answered by SQLite every time, as it was before.
const (
	maxLookupEntries = 10_000
	maxLookupRows    = 256
	maxLookupBytes   = 64 << 20
)

// lookupTables are the tables whose queries a lookupMemo remembers: small
// tables that grype's v6 store reads again for every package or every finding
// with the same arguments. For each package grype resolves the distro's alias
// and its operating-system rows twice (affected and unaffected packages) and
// lists all providers, six of the eight queries a package without findings
// costs, each parsed again by SQLite (modernc's driver prepares every query it
// runs, so prepared statements would not save it). The decorator tables are
// read once per finding's CVE.
var lookupTables = []string{
	"operating_systems",
	"operating_system_specifier_overrides",
	"package_specifier_overrides",
	"providers",
	"architecture_aliases",
	"epss_metadata",
	"known_exploited_vulnerability_handles",
	"epss_handles",
	"cwe_handles",
}

// lookupMemo is the connection pool of grype's gorm handle, remembering the
// results of the queries of lookupTables (by SQL and arguments) for the life of
// the DB. grype opens the database read-only and immutable, so a query gives the
// same rows every time; the remembered rows are handed back through database/sql
// as the same driver values SQLite's driver gave, so gorm scans them exactly as
// it scanned the originals. Every other query, and every statement that is not
// a query, goes to SQLite as before.
type lookupMemo struct {
	gorm.ConnPool
	replay     *sql.DB // serves remembered rows as *sql.Rows
	maxEntries int
	maxRows    int
	hits       atomic.Int64 // queries answered from the memo

	mu       sync.RWMutex
	entries  map[string]*lookupResult
	bytes    int64 // the sum of the entries' sizes
	maxBytes int64 // the most bytes may be
}

// lookupResult is the rows of one query, as the driver gave them.
type lookupResult struct {
	columns []string
	types   []string       // DatabaseTypeName of each column
	scan    []reflect.Type // ScanType of each column
	rows    [][]driver.Value
}

// valueOverhead is what a remembered value counts besides its text or bytes:
// its interface word pair (numbers and times are stored in it).
const valueOverhead = 16

// size is the bytes the result holds: its column names and types and, for each
// value, its text or bytes and valueOverhead.
func (r *lookupResult) size() int64 {
	var n int64
	for i := range r.columns {
		n += int64(len(r.columns[i]) + len(r.types[i]))
	}
	for _, row := range r.rows {
		for _, v := range row {
			n += valueOverhead
			switch v := v.(type) {
			case []byte:
				n += int64(len(v))
			case string:
				n += int64(len(v))
			}
		}
	}
	return n
}

// installLookupMemo puts a lookupMemo of at most maxEntries results of at most
// maxRows rows each, maxLookupBytes in all, between db
// and its connection pool: every query grype's stores start from db (they all
// share it, and each query starts a session from it) goes through it.
func installLookupMemo(db *gorm.DB, maxEntries, maxRows int) *lookupMemo {
	if db == nil || db.Statement == nil || db.Statement.ConnPool == nil {
		return nil
	}
	m := newLookupMemo(db.Statement.ConnPool, maxEntries, maxRows)
	db.Statement.ConnPool = m
	return m
}

func newLookupMemo(pool gorm.ConnPool, maxEntries, maxRows int) *lookupMemo {
	return &lookupMemo{
		ConnPool:   pool,
		replay:     sql.OpenDB(replayConnector{}),
		maxEntries: maxEntries,
		maxRows:    maxRows,
		maxBytes:   maxLookupBytes,
		entries:    map[string]*lookupResult{},
	}
}

// Close releases the replaying pool (the database's own is grype's to close).
func (m *lookupMemo) Close() error { return m.replay.Close() }

// GetDBConn is the database's own *sql.DB, as gorm asks of a pool.
func (m *lookupMemo) GetDBConn() (*sql.DB, error) {
	if db, ok := m.ConnPool.(*sql.DB); ok {
		return db, nil
	}
	if c, ok := m.ConnPool.(gorm.GetDBConnector); ok {
		return c.GetDBConn()
	}
	return nil, gorm.ErrInvalidDB
}

// len is how many results are remembered.
func (m *lookupMemo) len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.entries)
}

// QueryContext answers a query of lookupTables from the memo, asking SQLite
// the first time; any other query goes to SQLite.
func (m *lookupMemo) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if !isLookup(query) {
		return m.ConnPool.QueryContext(ctx, query, args...)
	}
	key := query + "\x00" + fmt.Sprintf("%#v", args)
	m.mu.RLock()
	res, ok := m.entries[key]
	m.mu.RUnlock()
	if ok {
		m.hits.Add(1)
	} else {
		var rest *sql.Rows
		var err error
		if res, rest, err = m.read(ctx, query, args); err != nil {
			return nil, err
		}
		if rest != nil {
			// Past maxRows: not remembered; the caller reads the kept rows,
			// then the rest from SQLite.
			rows, err := m.replay.QueryContext(ctx, "", &partialResult{res: res, rest: rest})
			if err != nil {
				return nil, errors.Join(err, rest.Close())
			}
			return rows, nil
		}
		size := res.size()
		m.mu.Lock()
		if _, dup := m.entries[key]; !dup && len(m.entries) < m.maxEntries && m.bytes+size <= m.maxBytes {
			m.entries[key] = res
			m.bytes += size
		}
		m.mu.Unlock()
	}
	return m.replay.QueryContext(ctx, "", res)
}

// isLookup says whether query reads only one of lookupTables.
func isLookup(query string) bool {
	rest, ok := strings.CutPrefix(query, "SELECT * FROM `")
	if !ok {
		return false
	}
	table, rest, ok := strings.Cut(rest, "`")
	if !ok || strings.Contains(rest, "JOIN") {
		return false
	}
	for _, t := range lookupTables {
		if t == table {
			return true
		}
	}
	return false
}

// read runs the query on SQLite and keeps at most maxRows of its rows: the
// driver's values, which scanning into an *any hands over unchanged (byte
// slices copied). When the result has more rows, read stops there and returns
// the query's rows as rest, positioned on the first row it did not keep (read
// but not scanned), for the caller to read on and close; res is then only the
// rows before it.
func (m *lookupMemo) read(ctx context.Context, query string, args []any) (res *lookupResult, rest *sql.Rows, err error) {
	rows, err := m.ConnPool.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if rest == nil {
			err = errors.Join(err, rows.Close())
		}
	}()
	res = &lookupResult{}
	if res.columns, err = rows.Columns(); err != nil {
		return nil, nil, err
	}
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, nil, err
	}
	for _, ct := range cts {
		res.types = append(res.types, ct.DatabaseTypeName())
		res.scan = append(res.scan, ct.ScanType())
	}
	for rows.Next() {
		if len(res.rows) >= m.maxRows {
			return res, rows, nil
		}
		row, err := scanRow(rows, len(res.columns))
		if err != nil {
			return nil, nil, err
		}
		res.rows = append(res.rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return res, nil, nil
}

// scanRow is the current row of rows as the driver gave it (byte slices
// copied), n columns.
func scanRow(rows *sql.Rows, n int) ([]driver.Value, error) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	row := make([]driver.Value, n)
	for i, v := range vals {
		row[i] = v
	}
	return row, nil
}

// replayConnector is a database/sql driver whose only query is "" with one
// argument, a *lookupResult, whose rows it returns.
type replayConnector struct{}

func (replayConnector) Connect(context.Context) (driver.Conn, error) { return replayConn{}, nil }
func (replayConnector) Driver() driver.Driver                        { return replayDriver{} }

type replayDriver struct{}

func (replayDriver) Open(string) (driver.Conn, error) { return replayConn{}, nil }

var errReplayOnly = errors.New("lookup memo: only remembered rows can be read")

type replayConn struct{}

func (replayConn) Prepare(string) (driver.Stmt, error) { return nil, errReplayOnly }
func (replayConn) Close() error                        { return nil }
func (replayConn) Begin() (driver.Tx, error)           { return nil, errReplayOnly }

// CheckNamedValue passes the *lookupResult through database/sql unconverted.
func (replayConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func (replayConn) QueryContext(_ context.Context, _ string, args []driver.NamedValue) (driver.Rows, error) {
	if len(args) != 1 {
		return nil, errReplayOnly
	}
	switch v := args[0].Value.(type) {
	case *lookupResult:
		return &replayRows{res: v}, nil
	case *partialResult:
		return &replayRows{res: v.res, rest: v.rest, pending: true}, nil
	}
	return nil, errReplayOnly
}

// partialResult is the first rows of a result too long to remember and the
// query's rows, positioned on the row after them (see lookupMemo.read).
type partialResult struct {
	res  *lookupResult
	rest *sql.Rows
}

// replayRows hands out a lookupResult's rows, a copy of each byte slice, so
// that what a caller does with one cannot change the next caller's; then, for
// a partialResult, the rest of the query's rows as SQLite gives them.
type replayRows struct {
	res     *lookupResult
	next    int
	rest    *sql.Rows // nil for a remembered result
	pending bool      // rest is on a row not yet handed out
}

func (r *replayRows) Columns() []string { return r.res.columns }

func (r *replayRows) Close() error {
	if r.rest == nil {
		return nil
	}
	return r.rest.Close()
}

func (r *replayRows) Next(dest []driver.Value) error {
	if r.next >= len(r.res.rows) {
		return r.nextRest(dest)
	}
	for i, v := range r.res.rows[r.next] {
		if b, ok := v.([]byte); ok {
			v = bytes.Clone(b)
		}
		dest[i] = v
	}
	r.next++
	return nil
}

func (r *replayRows) ColumnTypeDatabaseTypeName(i int) string { return r.res.types[i] }
func (r *replayRows) ColumnTypeScanType(i int) reflect.Type   { return r.res.scan[i] }

// nextRest hands out the next of the rows past a partialResult's first.
func (r *replayRows) nextRest(dest []driver.Value) error {
	if r.rest == nil {
		return io.EOF
	}
	if !r.pending && !r.rest.Next() {
		if err := r.rest.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	r.pending = false
	row, err := scanRow(r.rest, len(dest))
	if err != nil {
		return err
	}
	copy(dest, row)
	return nil
}
