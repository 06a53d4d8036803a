package main

import (
	"os"
	"path/filepath"
)

// Versions of the peer tools; hack/bench/setup.sh installs the same.
const koVersion = "v0.19.1"

// defaultTool returns where setup.sh installs a tool.
func defaultTool(name string) string {
	cache := os.Getenv("SHIPKIT_CACHE")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return name
		}
		cache = filepath.Join(dir, "shipkit")
	}
	switch name {
	case "ko":
		return filepath.Join(cache, "tools", "ko-"+koVersion, "ko")
	}
	return name
}
