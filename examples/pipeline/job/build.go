package job

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/shipkit/shipkit/build"
	"github.com/shipkit/shipkit/build/publish"
)

// build compiles the source for every platform into an image index.
func (j *Job) build(ctx context.Context) (string, error) {
	// Start what later stages need and the build does not, while Go compiles.
	if j.licenses == nil {
		j.licenses = startLicenseScanner()
	}
	if j.keys == nil {
		j.keys = goBackground(j.readKeys)
	}
	opts := []build.Option{
		build.WithPlatforms(j.cfg.Platforms...),
		build.WithObserver(j.obs),
		build.WithLogger(j.log),
	}
	if j.cfg.BinaryCache != "" {
		opts = append(opts, build.WithBinaryCache(j.cfg.BinaryCache))
	}
	if j.cfg.Base != "" {
		ref, err := name.ParseReference(j.cfg.Base, j.nameOpts()...)
		if err != nil {
			return "", fmt.Errorf("base %q: %w", j.cfg.Base, err)
		}
		opts = append(opts, build.WithBase(build.RemoteBaseRef(ref)))
	}
	b, err := build.NewGo(opts...)
	if err != nil {
		return "", err
	}
	idx, err := b.Build(ctx, build.Source{
		Dir:        j.cfg.Source,
		Repository: j.cfg.SourceRepository,
		Revision:   j.cfg.SourceRevision,
	})
	if err != nil {
		return "", err
	}
	d, err := idx.Digest()
	if err != nil {
		return "", fmt.Errorf("digest of the index: %w", err)
	}
	j.Index = idx
	return fmt.Sprintf("%d platforms, index %s", len(j.cfg.Platforms), short(d.String())), nil
}

// push publishes the index by digest, to Registry or to a registry served in process.
func (j *Job) push(ctx context.Context) (string, error) {
	if err := j.need("image", j.Index != nil); err != nil {
		return "", err
	}
	repoName := j.cfg.Registry
	if repoName == "" {
		host, stop, err := serveRegistry(ctx)
		if err != nil {
			return "", fmt.Errorf("starting the in-process registry: %w", err)
		}
		j.cleanup = append(j.cleanup, stop)
		repoName = host + "/shipkit/hello"
	}
	repo, err := name.NewRepository(repoName, j.nameOpts()...)
	if err != nil {
		return "", fmt.Errorf("registry %q: %w", repoName, err)
	}
	d, err := publish.Index(ctx, j.Index, repo, publish.WithObserver(j.obs))
	if err != nil {
		return "", err
	}
	j.Repo, j.Digest = repo, d
	return d.String(), nil
}

func (j *Job) nameOpts() []name.Option {
	if j.cfg.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// serveRegistry serves go-containerregistry's registry on a random port of
// 127.0.0.1 (go-containerregistry talks plain HTTP to it) and returns its host:port
// and a function that stops it.
func serveRegistry(ctx context.Context) (string, func(), error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler:           registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		ReadHeaderTimeout: 30 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l) // returns http.ErrServerClosed once stopped
	}()
	return l.Addr().String(), func() { _ = srv.Close(); <-done }, nil
}

// short abbreviates a digest for summaries: sha256:0123456789ab.
func short(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}
