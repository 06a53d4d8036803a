package sbom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

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

// Catalog every platform image of a multi-arch index, named by the repository the
// index is pushed to: one SBOM per platform, each about its own image. Its
// predicate names that image (Subject), so a signer given the index's digest puts
// it on the platform image, where the verifier and the deploy gate judge each
// platform on its own SBOM: nothing is merged.
func ExampleCataloger_CatalogIndex() {
	var adds []mutate.IndexAddendum
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := crane.Image(map[string][]byte{
			"etc/os-release":      []byte(testimage.OSRelease),
			"var/lib/dpkg/status": []byte(testimage.DpkgStatus),
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		p := &v1.Platform{OS: "linux", Architecture: arch}
		if img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: p.OS, Architecture: p.Architecture,
			RootFS: v1.RootFS{Type: "layers"}}); err != nil {
			fmt.Println(err)
			return
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)

	repo, _ := name.NewRepository("registry.example/team/app") // where the index is pushed
	sboms, err := sbom.New(sbom.WithSourceName(repo)).CatalogIndex(context.Background(), idx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range sboms {
		p, err := sbom.Predicate(s, sbom.CycloneDXJSON)
		if err != nil {
			fmt.Println(err)
			return
		}
		var bom struct {
			Metadata struct{ Component struct{ PURL string } }
		}
		if err := json.Unmarshal(p.Body, &bom); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(s.Platform, p.Subject == s.Subject, sbom.Summary(s))
		fmt.Println(strings.Replace(bom.Metadata.Component.PURL, s.Subject.String(), "sha256:…", 1))
	}
	// Output:
	// linux/amd64 true map[deb:1]
	// pkg:oci/app@sha256:…?arch=amd64&repository_url=registry.example%2Fteam%2Fapp
	// linux/arm64 true map[deb:1]
	// pkg:oci/app@sha256:…?arch=arm64&repository_url=registry.example%2Fteam%2Fapp
}
