// Package registry starts OCI registries for shipkit's integration tests: an in-process
// one (go-containerregistry's pkg/registry, plain HTTP, no auth) for tests that only need
// somewhere to push, and the CNCF distribution server (Debian's docker-registry) with TLS
// from a private CA and htpasswd auth for tests of credentials and trust.
//
// Both listen on 127.0.0.1 with a random port. Share one per test package with
// [testbed.Lazy]:
//
//	var reg = testbed.Lazy[*registry.Distribution]{Start: registry.Start}
package registry

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
)

// NewInProcess serves go-containerregistry's in-memory registry on 127.0.0.1 with a
// random port and returns its host ("127.0.0.1:PORT") and a function that stops it. The
// registry logs nothing unless opts include [ggcr.Logger]; other opts (for example
// [ggcr.WithReferrersSupport]) are passed on.
//
// go-containerregistry talks plain HTTP to registries on 127.0.0.1, so references to
// the host need no option.
func NewInProcess(opts ...ggcr.Option) (host string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("in-process registry: listen on 127.0.0.1: %w", err)
	}
	opts = append([]ggcr.Option{ggcr.Logger(log.New(io.Discard, "", 0))}, opts...)
	srv := &http.Server{Handler: ggcr.New(opts...), ReadHeaderTimeout: 30 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l) // returns http.ErrServerClosed after stop; nothing else is expected
	}()
	stop = func() {
		_ = srv.Close() // also closes l; Close's only error is the listener's
		<-done
	}
	return l.Addr().String(), stop, nil
}
