package sbom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/shipkit/shipkit/scan/internal/testimage"
	"github.com/shipkit/shipkit/scan/sbom"
)

// Catalog an image value in memory (here a one-layer Debian 12 root with libc6 in
// the dpkg database), then write the SBOM as SPDX 2.3 JSON.
func ExampleCataloger_Catalog() {
	img, err := crane.Image(map[string][]byte{
		"etc/os-release":      []byte(testimage.OSRelease),
		"var/lib/dpkg/status": []byte(testimage.DpkgStatus),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := sbom.New().Catalog(context.Background(), img)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Syft().Artifacts.LinuxDistribution.PrettyName)
	fmt.Println(sbom.Summary(s))
	for p := range s.Syft().Artifacts.Packages.Enumerate() {
		fmt.Println(p.Name, p.Version)
	}
	var doc bytes.Buffer
	if err := sbom.Encode(&doc, s, sbom.SPDXJSON); err != nil {
		fmt.Println(err)
		return
	}
	var spdx struct {
		Version string `json:"spdxVersion"`
	}
	if err := json.Unmarshal(doc.Bytes(), &spdx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(spdx.Version)
	// Output:
	// Debian GNU/Linux 12 (bookworm)
	// map[deb:1]
	// libc6 2.36-9+deb12u2
	// SPDX-2.3
}
