// Package policyfile reads the policy files that scan/policy/rego and
// scan/policy/gatekeeper load from paths or an fs.FS: one walk, one order and one
// set of error messages for both. It links only the standard library, so neither
// engine gains the other's dependencies through it.
package policyfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Reader reads one engine's policy files.
type Reader struct {
	// Engine starts every error message ("rego", "gatekeeper").
	Engine string
	// Want reports whether a file found below a directory is a policy file, by its
	// slash-separated path there ("lib/deny.rego"). A file named directly is read
	// whatever its name. Nil admits every file.
	Want func(path string) bool
}

// ReadPaths calls add with the name and contents of each file at paths, in the
// order given: a file as named, a directory as every file below it that Want
// admits, in lexical order (fs.WalkDir's), named by the directory joined with its
// path below it (policies/lib/deny.rego).
//
// Errors, each naming what failed: a path that cannot be stat'ed or read is
// "ENGINE: <the os error>"; add's error is returned as it is (it names the file
// and the engine already); any other error below a directory (walking it, reading
// a file) is "ENGINE: read policies: <err>". A cancelled ctx stops before the next
// file.
func (r Reader) ReadPaths(ctx context.Context, paths []string, add func(name string, data []byte) error) error {
	for _, path := range paths {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", r.Engine, err)
		}
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Engine, err)
		}
		if info.IsDir() {
			if err := r.walk(ctx, os.DirFS(path), path, add); err != nil {
				return err
			}
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Engine, err)
		}
		if err := add(path, b); err != nil {
			return err
		}
	}
	return nil
}

// ReadFS calls add with the name and contents of each file of fsys that Want
// admits, in lexical order, named by its path in fsys. add's error is returned as
// it is; any other (walking, reading a file, a cancelled ctx) is "ENGINE: read
// policies: <err>".
func (r Reader) ReadFS(ctx context.Context, fsys fs.FS, add func(name string, data []byte) error) error {
	return r.walk(ctx, fsys, "", add)
}

// walk reads the files of fsys that Want admits, naming each by prefix joined with
// its path (its path alone without a prefix).
func (r Reader) walk(ctx context.Context, fsys fs.FS, prefix string, add func(name string, data []byte) error) error {
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || (r.Want != nil && !r.Want(path)) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		name := path
		if prefix != "" {
			name = filepath.Join(prefix, filepath.FromSlash(path))
		}
		if err := add(name, b); err != nil {
			return addError{err}
		}
		return nil
	})
	var ae addError
	switch {
	case errors.As(err, &ae):
		return ae.err
	case err != nil:
		return fmt.Errorf("%s: read policies: %w", r.Engine, err)
	}
	return nil
}

// addError carries add's error out of the walk unwrapped.
type addError struct{ err error }

func (e addError) Error() string { return e.err.Error() }
