package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// goPackage is what `go list -deps -json` says about one package.
type goPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	EmbedFiles []string
	Module     *struct {
		Path    string
		Version string
		Main    bool
		GoMod   string
		Replace *struct {
			Path    string
			Version string
		}
	}
}

// sourceHash returns "sha256:HEX" of everything a Go build of the main package pkg in
// dir compiles from, so that a plan can tell that the image must be rebuilt without
// building it:
//
//   - the go version of the toolchain on PATH;
//   - for every package of the main module, or of a module replaced by a local
//     directory, that the build compiles: the name and content of every file in the
//     package's directory except _test.go files (so files for other platforms, assembly
//     and embedded files count), and its embedded files in subdirectories;
//   - the main module's go.mod and go.sum;
//   - for every other module, its path and version (go.sum pins their content).
//
// The packages are listed as platform (GOOS/GOARCH) sees them, with cgo off, like the
// build; a dependency imported only on another platform is not seen.
func sourceHash(ctx context.Context, dir, pkg, goos, goarch string) (string, error) {
	env := append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=")
	version, err := goOutput(ctx, dir, env, "env", "GOVERSION")
	if err != nil {
		return "", err
	}
	out, err := goOutput(ctx, dir, env, "list", "-deps", "-json=ImportPath,Dir,Standard,EmbedFiles,Module", "--", pkg)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	field := func(parts ...string) {
		for _, p := range parts {
			fmt.Fprintf(h, "%d:%s;", len(p), p)
		}
	}
	field("go", strings.TrimSpace(string(version)))
	dec := json.NewDecoder(bytes.NewReader(out))
	hashedMods := map[string]bool{}
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("reading go list output: %w", err)
		}
		m := p.Module
		switch {
		case p.Standard:
			continue
		case m != nil && !m.Main && m.Version != "" && (m.Replace == nil || m.Replace.Version != ""):
			// A module from the module cache: its version pins its content.
			if !hashedMods[m.Path] {
				hashedMods[m.Path] = true
				field("module", m.Path, m.Version)
				if m.Replace != nil {
					field("replace", m.Replace.Path, m.Replace.Version)
				}
			}
			continue
		}
		// A package of the main module or of a local directory: its files.
		if m != nil && m.Main && !hashedMods[m.Path] {
			hashedMods[m.Path] = true
			for _, f := range []string{m.GoMod, filepath.Join(filepath.Dir(m.GoMod), "go.sum")} {
				if err := hashFile(h, f, filepath.Base(f)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return "", err
				}
			}
		}
		field("package", p.ImportPath)
		if err := hashPackageDir(h, p); err != nil {
			return "", err
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// hashPackageDir hashes the files of one package's directory (not _test.go files,
// not subdirectories) and its embedded files.
func hashPackageDir(h io.Writer, p goPackage) error {
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return fmt.Errorf("package %s: %w", p.ImportPath, err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		seen[e.Name()] = true
		if err := hashFile(h, filepath.Join(p.Dir, e.Name()), e.Name()); err != nil {
			return fmt.Errorf("package %s: %w", p.ImportPath, err)
		}
	}
	for _, f := range p.EmbedFiles {
		if seen[f] {
			continue
		}
		if err := hashFile(h, filepath.Join(p.Dir, filepath.FromSlash(f)), f); err != nil {
			return fmt.Errorf("package %s: embedded file: %w", p.ImportPath, err)
		}
	}
	return nil
}

// hashFile writes the name, size and content of one file to h.
func hashFile(h io.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "file:%d:%s;%d:", len(name), name, fi.Size())
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// goOutput runs the go command in dir and returns its standard output; a failure
// carries the command's standard error.
func goOutput(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("go %s in %s: %w:\n%s", args[0], dir, err, msg)
		}
		return nil, fmt.Errorf("go %s in %s: %w", args[0], dir, err)
	}
	return stdout.Bytes(), nil
}
