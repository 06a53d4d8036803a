package sbom

import "runtime/debug"

// WithSyftVersionForTest makes the cache see syft at version v in the build
// information: test binaries carry no module dependencies, so without it the
// cache directory is never used in tests (see syftModuleVersion).
func WithSyftVersionForTest(v string) CacheOption {
	return func(c *LayerCache) {
		c.buildInfo = func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Deps: []*debug.Module{{Path: "github.com/anchore/syft", Version: v}}}, true
		}
	}
}
