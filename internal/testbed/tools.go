package testbed

import (
	"os"
	"path/filepath"
)

// CacheDir is where hack/testbed.sh keeps what it builds: $SHIPKIT_CACHE, else
// shipkit under $XDG_CACHE_HOME, else ~/.cache/shipkit.
func CacheDir() string {
	if d := os.Getenv("SHIPKIT_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "shipkit")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "shipkit")
	}
	return filepath.Join(home, ".cache", "shipkit")
}

// ToolPath is where hack/testbed.sh installs a CLI the tests compare with, e.g.
// ToolPath("cosign", "v2.6.5").
func ToolPath(name, version string) string {
	return filepath.Join(CacheDir(), "tools", name+"-"+version, name)
}
