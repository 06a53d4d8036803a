// Package testbed starts the real servers that shipkit's integration tests talk to:
// a Kubernetes control plane (subpackage kube), OCI registries (registry), Prometheus
// (prom) and an offline grype vulnerability database (vulndb). Every server listens on
// 127.0.0.1 with a random port and is stopped when the tests that started it end.
//
// A part of the test bed that is not installed is reported with [ErrMissing]. Locally
// the test then skips with a message that says how to install it (hack/testbed.sh);
// in CI (CI=true) it fails: a skipped integration test is a failing one.
package testbed

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
)

// ErrMissing marks an error caused by a part of the test bed that is not installed.
var ErrMissing = errors.New("test bed part not installed (run hack/testbed.sh)")

// Missingf returns an error that wraps [ErrMissing] with a description of what is missing.
func Missingf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrMissing)
}

// InCI reports whether the tests run in CI, where nothing may be skipped.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Check ends the test when err is not nil: a missing part skips locally and fails in
// CI; any other error fails.
func Check(t testing.TB, err error) {
	t.Helper()
	switch {
	case err == nil:
	case errors.Is(err, ErrMissing) && !InCI():
		t.Skipf("skipping: %v", err)
	default:
		t.Fatalf("test bed: %v", err)
	}
}

// Lazy starts one part of the test bed on first use and shares it between the tests
// of a package. Call Stop from TestMain after m.Run:
//
//	var cluster = testbed.Lazy[*kube.Cluster]{Start: kube.Start}
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		cluster.Stop()
//		os.Exit(code)
//	}
type Lazy[T any] struct {
	// Start starts the part and returns it with a function that stops it.
	Start func() (T, func(), error)

	once sync.Once
	val  T
	stop func()
	err  error
}

// Get returns the started part, starting it on first use. It ends the test as
// [Check] does when the part cannot be started.
func (l *Lazy[T]) Get(t testing.TB) T {
	t.Helper()
	l.once.Do(func() { l.val, l.stop, l.err = l.Start() })
	Check(t, l.err)
	return l.val
}

// Stop stops the part if it was started.
func (l *Lazy[T]) Stop() {
	l.once.Do(func() {}) // a Get after Stop must not start a new part
	if l.stop != nil {
		l.stop()
	}
}
