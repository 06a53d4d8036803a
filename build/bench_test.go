package build_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shipkit/shipkit/build"
)

// BenchmarkGoBuildNoChange rebuilds testdata/app for two platforms with no source
// change, with and without the binary cache (Go's build cache is warm in both).
func BenchmarkGoBuildNoChange(b *testing.B) {
	dir := b.TempDir()
	require.NoError(b, copyTree(dir))
	for _, bc := range []struct {
		name  string
		cache string
	}{{"bincache", b.TempDir()}, {"nobincache", ""}} {
		b.Run(bc.name, func(b *testing.B) {
			opts := []build.Option{build.WithPlatforms("linux/amd64", "linux/arm64")}
			if bc.cache != "" {
				opts = append(opts, build.WithBinaryCache(bc.cache))
			}
			builder, err := build.NewGo(opts...)
			require.NoError(b, err)
			ctx := context.Background()
			_, err = builder.Build(ctx, build.Source{Dir: dir}) // warm up
			require.NoError(b, err)
			b.ResetTimer()
			for b.Loop() {
				idx, err := builder.Build(ctx, build.Source{Dir: dir})
				require.NoError(b, err)
				_, err = idx.Digest()
				require.NoError(b, err)
			}
		})
	}
}
