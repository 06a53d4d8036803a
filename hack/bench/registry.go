package main

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/registry"
)

// countingRegistry serves go-containerregistry's registry on 127.0.0.1 and counts the
// blob bytes pushed to it.
type countingRegistry struct {
	host   string
	pushed atomic.Int64
	srv    *http.Server
}

func startRegistry(ctx context.Context) (*countingRegistry, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &countingRegistry{host: l.Addr().String()}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.Path, "/blobs/uploads/") && (req.Method == http.MethodPatch || req.Method == http.MethodPut) {
			req.Body = &countingBody{ReadCloser: req.Body, n: &r.pushed}
		}
		inner.ServeHTTP(w, req)
	})}
	go r.srv.Serve(l) //nolint:errcheck // ends when close shuts the server
	return r, nil
}

func (r *countingRegistry) close() { r.srv.Close() }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
