package kube

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// containerImageLine is the line of kwok's pod-ready stage that reports a container's
// image; imageIDLines follow it in the copy the test bed runs.
const containerImageLine = "      - image: {{ .image | Quote }}\n"

// imageIDLines give a running container an imageID when its image is named by
// digest, as a kubelet reports it once the image is pulled: containerd's CRI gives
// the repository digest, repo@sha256:…, which for an image pulled by digest is the
// reference itself. kwok pulls nothing, so an image named only by tag gets no
// imageID (a real kubelet would report the digest it resolved); code reading
// imageIDs must then fall back to the spec, as it must for a container still
// pulling. sprig's contains is among kwok's template functions.
const imageIDLines = "        {{ if contains \"@sha256:\" .image }}\n" +
	"        imageID: {{ .image | Quote }}\n" +
	"        {{ end }}\n"

// withImageIDs writes a copy of kwok's pod-ready stage at src into dir with
// imageIDLines after every container's image line, and returns its path. A stage
// without the line (another kwok version) is an error rather than pods without
// imageIDs.
func withImageIDs(src, dir string) (string, error) {
	data, err := os.ReadFile(src)
	if err != nil {
		return "", fmt.Errorf("kube: read kwok stage: %w", err)
	}
	if !bytes.Contains(data, []byte(containerImageLine)) {
		return "", fmt.Errorf("kube: %s has no line %q to add imageIDs after (kwok %s expected)", src, containerImageLine, KwokVersion)
	}
	out := bytes.ReplaceAll(data, []byte(containerImageLine), []byte(containerImageLine+imageIDLines))
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, out, 0o600); err != nil {
		return "", fmt.Errorf("kube: write kwok stage: %w", err)
	}
	return dst, nil
}
