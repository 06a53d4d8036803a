package build

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// buildTemp runs build into a temporary file and returns the binary.
func buildTemp(build func(out string) error) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "shipkit-go-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "app")
	if err := build(out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// buildCached runs build into a hard link to the binary cached in dir, so that go
// build finds an up-to-date target and does not relink, and returns the binary.
//
// go replaces the link's directory entry (or rewrites the link, never the cached
// file's name), and only a complete binary is renamed over the cached one, so an
// interrupted or concurrent build never leaves a partial binary under the cached
// name. A sha256 written beside it catches a cached binary damaged any other way:
// when go reuses the binary and it does not match, the entry is dropped and rebuilt.
func buildCached(dir string, build func(out string) error) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("binary cache: %w", err)
	}
	cached, sum := filepath.Join(dir, "app"), filepath.Join(dir, "app.sha256")
	tmp := filepath.Join(dir, "app."+rand.Text())
	defer os.Remove(tmp)
	if err := os.Link(cached, tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("binary cache: %w", err)
	}
	if err := build(tmp); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(tmp)
	if err != nil {
		return nil, fmt.Errorf("reading binary: %w", err)
	}
	if sameFile(tmp, cached) { // go reused the cached binary
		want, _ := os.ReadFile(sum)
		if got := sha256.Sum256(bin); bytes.Equal([]byte(hex.EncodeToString(got[:])), want) {
			return bin, nil
		}
		// Damaged: drop the entry and build from nothing.
		os.Remove(cached)
		os.Remove(tmp)
		if err := build(tmp); err != nil {
			return nil, err
		}
		if bin, err = os.ReadFile(tmp); err != nil {
			return nil, fmt.Errorf("reading binary: %w", err)
		}
	}
	// Publish the new binary, then its sum; a reader in between sees a mismatch and
	// rebuilds, which is slow but correct.
	if err := os.Rename(tmp, cached); err == nil {
		got := sha256.Sum256(bin)
		sumTmp := sum + "." + rand.Text()
		if os.WriteFile(sumTmp, []byte(hex.EncodeToString(got[:])), 0o644) == nil {
			if os.Rename(sumTmp, sum) != nil {
				os.Remove(sumTmp)
			}
		}
	}
	return bin, nil
}

func sameFile(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}
