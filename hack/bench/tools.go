package main

import (
	"os"
	"path/filepath"
)

// Versions of the peer tools; the scripts under hack/bench/setup install the same.
const koVersion = "v0.19.1"

// defaultTool returns where hack/bench/setup/<name>.sh installs a tool:
// $SHIPKIT_CACHE/tools/<name>-<version>/<name>.
func defaultTool(name, version string) string {
	cache := os.Getenv("SHIPKIT_CACHE")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return name
		}
		cache = filepath.Join(dir, "shipkit")
	}
	return filepath.Join(cache, "tools", name+"-"+version, name)
}
