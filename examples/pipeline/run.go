package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shipkit/shipkit/build"
)

func run(ctx context.Context, cfg config, out io.Writer) error {
	repoName := cfg.registry
	if repoName == "" {
		host, stop, err := serveRegistry(ctx)
		if err != nil {
			return fmt.Errorf("starting the in-process registry: %w", err)
		}
		defer stop()
		repoName = host + "/shipkit/hello"
		fmt.Fprintf(out, "in-process registry at %s\n", host)
	}
	var nameOpts []name.Option
	if cfg.insecure || cfg.registry == "" {
		nameOpts = append(nameOpts, name.Insecure)
	}
	repo, err := name.NewRepository(repoName, nameOpts...)
	if err != nil {
		return fmt.Errorf("registry %q: %w", repoName, err)
	}

	opts := []build.Option{build.WithPlatforms(strings.Split(cfg.platforms, ",")...)}
	if cfg.base != "" {
		var baseOpts []name.Option
		if cfg.insecure {
			baseOpts = append(baseOpts, name.Insecure)
		}
		ref, err := name.ParseReference(cfg.base, baseOpts...)
		if err != nil {
			return fmt.Errorf("base %q: %w", cfg.base, err)
		}
		opts = append(opts, build.WithBase(build.RemoteBaseRef(ref)))
	}
	builder, err := build.NewGo(opts...)
	if err != nil {
		return err
	}

	var idx v1.ImageIndex
	if err := step(out, "build "+cfg.source+" for "+cfg.platforms, func() (string, error) {
		var err error
		idx, err = builder.Build(ctx, build.Source{Dir: cfg.source})
		if err != nil {
			return "", err
		}
		d, err := idx.Digest()
		return "index " + d.String(), err
	}); err != nil {
		return err
	}

	var digest name.Digest
	if err := step(out, "push to "+repo.String(), func() (string, error) {
		var err error
		digest, err = build.Publish(ctx, idx, repo)
		return "pushed " + digest.String(), err
	}); err != nil {
		return err
	}

	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("reading index: %w", err)
	}
	fmt.Fprintf(out, "\nimage  %s\n", digest)
	for _, m := range im.Manifests {
		fmt.Fprintf(out, "  %-14s %s\n", m.Platform, m.Digest)
	}
	return nil
}

// serveRegistry serves go-containerregistry's registry on a random port of
// 127.0.0.1 and returns its host:port.
func serveRegistry(ctx context.Context) (string, func(), error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(discardLogger()))}
	go srv.Serve(l) //nolint:errcheck // Serve returns when stop closes the server
	return l.Addr().String(), func() { srv.Close() }, nil
}
