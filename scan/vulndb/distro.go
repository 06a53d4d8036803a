package vulndb

import (
	"fmt"
	"strings"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/distro"
)

// codenames are the release codenames of the distro versions shipkit tests scan. grype
// finds the OS rows of a scanned image by codename when the image's os-release has one
// (VERSION_CODENAME=bookworm), so a row without it would silently never match. grype's
// own table is internal to its module; this is the part of it that is needed here.
var codenames = map[string]string{
	"debian:10": "buster", "debian:11": "bullseye", "debian:12": "bookworm", "debian:13": "trixie",
	"ubuntu:20.04": "focal", "ubuntu:22.04": "jammy", "ubuntu:24.04": "noble",
}

// parseDistro turns "debian:12" into the operating system row grype's OS transformer
// would write for the same vunnel namespace.
func parseDistro(s string) (*v6.OperatingSystem, error) {
	id, ver, ok := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	if !ok || id == "" || ver == "" {
		return nil, fmt.Errorf("distro %q is not of the form name:version (e.g. debian:12)", s)
	}
	typ, ok := distro.IDMapping[id]
	if !ok {
		return nil, fmt.Errorf("distro %q: grype does not know %q", s, id)
	}
	major, minor, _ := strings.Cut(ver, ".")
	if major == "" || major[0] < '0' || major[0] > '9' {
		return nil, fmt.Errorf("distro %q: version %q is not numeric", s, ver)
	}
	minor, _, _ = strings.Cut(minor, ".")
	return &v6.OperatingSystem{
		Name:         string(typ),
		ReleaseID:    id,
		MajorVersion: major,
		MinorVersion: minor,
		Codename:     codenames[id+":"+ver],
	}, nil
}
