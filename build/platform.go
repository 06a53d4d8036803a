package build

import (
	"fmt"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// goLinuxArchs are the architectures `go tool dist list` gives for linux.
var goLinuxArchs = map[string]bool{
	"386": true, "amd64": true, "arm": true, "arm64": true, "loong64": true, "mips": true, "mips64": true,
	"mips64le": true, "mipsle": true, "ppc64": true, "ppc64le": true, "riscv64": true, "s390x": true,
}

// goVariants are the OCI variants the Go builder turns into a micro-architecture
// level (GOAMD64, GOARM64, GOARM), by architecture.
var goVariants = map[string]*regexp.Regexp{
	"amd64": regexp.MustCompile(`^v[1-4]$`),
	"arm64": regexp.MustCompile(`^v8(\.[0-9])?$|^v9(\.[0-5])?$`),
	"arm":   regexp.MustCompile(`^v[5-7]$`),
}

// checkGoPlatforms refuses, when the builder is made, a platform the Go builder
// cannot build: not linux, an architecture Go does not build for linux, or a variant
// it cannot turn into a Go setting (which would make an image claim a variant its
// binary is not built for).
func checkGoPlatforms(platforms []v1.Platform) error {
	for _, p := range platforms {
		switch {
		case p.OS != "linux":
			return fmt.Errorf("platform %s: only linux images are supported", p)
		case !goLinuxArchs[p.Architecture]:
			return fmt.Errorf("platform %s: the Go toolchain cannot build linux/%s (see go tool dist list)", p, p.Architecture)
		case p.Variant != "" && (goVariants[p.Architecture] == nil || !goVariants[p.Architecture].MatchString(p.Variant)):
			return fmt.Errorf("platform %s: variant %q of %s is not one the Go builder knows (%s)", p, p.Variant, p.Architecture, knownVariants(p.Architecture))
		case p.OSVersion != "" || len(p.OSFeatures) > 0 || len(p.Features) > 0:
			return fmt.Errorf("platform %s: OS versions and features are not supported for linux", p)
		}
	}
	return nil
}

func knownVariants(arch string) string {
	switch arch {
	case "amd64":
		return "v1 to v4"
	case "arm64":
		return "v8, v8.0 to v8.9, v9, v9.0 to v9.5"
	case "arm":
		return "v5, v6, v7"
	}
	return "none for " + arch
}

// goEnvFor returns the go command's settings for platform p's variant.
func goEnvFor(p v1.Platform) []string {
	v := p.Variant
	if v == "" {
		return nil
	}
	switch p.Architecture {
	case "amd64":
		return []string{"GOAMD64=" + v}
	case "arm64": // GOARM64 wants v8.0, an OCI variant says v8
		if !strings.Contains(v, ".") {
			v += ".0"
		}
		return []string{"GOARM64=" + v}
	case "arm":
		return []string{"GOARM=" + strings.TrimPrefix(v, "v")}
	}
	return nil
}
