package vuln

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/distribution"
	"github.com/anchore/grype/grype/db/v6/installation"
)

// urlLike matches what grype's importer would download instead of reading a file.
var urlLike = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://`)

// Import installs a grype v6 database from a local file into root (the directory
// [Open] takes), the way `grype db import` does: path is a database archive as grype
// publishes it (vulnerability-db_v6.….tar.zst, or .tar.gz/.tar.xz/.tar, holding
// vulnerability.db) or a bare vulnerability.db file. It is the air-gapped way to
// bring a database to a machine: copy the archive over, Import it, Open the root.
//
// The archive is unpacked by Import itself, bounded: it may inflate to at most
// [DefaultMaxImportBytes] in all (headers and skipped entries included) and the
// database file to at most [DefaultMaxImportFileBytes] ([WithMaxImportBytes],
// [WithMaxImportFileBytes]); past either the error wraps [ErrTooLarge]. Only the
// archive's top-level vulnerability.db is written to disk. The database is then
// indexed in a directory under root and checked (it must be a readable v6 database
// of a schema this build reads, else the error wraps [ErrCorrupt] or [ErrSchema]) before it replaces
// the database in root/6, so a bad or oversized archive leaves the installed database
// as it was. Import never downloads: a URL is refused. A [Scanner] already open keeps
// reading the database it loaded; Open the root again to use the new one. The context
// is checked while unpacking and before and after each step; grype's indexing itself
// cannot be interrupted.
func Import(ctx context.Context, path, root string, opts ...ImportOption) error {
	if err := importDB(ctx, path, root, opts); err != nil {
		return fmt.Errorf("import vulnerability database %s into %s: %w", path, root, err)
	}
	return nil
}

func importDB(ctx context.Context, path, root string, opts []ImportOption) (err error) {
	cfg := importConfig{maxBytes: DefaultMaxImportBytes, maxFileBytes: DefaultMaxImportFileBytes}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case path == "":
		return errors.New("no file given")
	case root == "":
		return errors.New("no directory given")
	case urlLike.MatchString(path):
		return errors.New("a URL, not a local file: Import never downloads (see WithUpdate)")
	case cfg.maxBytes <= 0 || cfg.maxFileBytes <= 0:
		return fmt.Errorf("import limits must be positive (got %d bytes in all, %d per file)", cfg.maxBytes, cfg.maxFileBytes)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	staging, err := os.MkdirTemp(root, ".import-")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(staging); rerr != nil && err == nil {
			err = fmt.Errorf("remove %s: %w", staging, rerr)
		}
	}()

	dbFile := abs
	if strings.HasSuffix(abs, ".db") {
		if limit := min(cfg.maxBytes, cfg.maxFileBytes); fi.Size() > limit {
			return fmt.Errorf("%w: the database file takes %d bytes, more than the limit of %d", ErrTooLarge, fi.Size(), limit)
		}
	} else {
		if dbFile, err = unpack(ctx, abs, filepath.Join(staging, "archive"), cfg); err != nil {
			return err
		}
	}

	// grype's curator unpacks, hydrates (indexes) and writes import.json into
	// staging/6; its distribution client is never used for a local file.
	client, err := distribution.NewClient(distribution.Config{})
	if err != nil {
		return err
	}
	cur, err := installation.NewCurator(installation.Config{DBRootDir: staging, ValidateChecksum: true}, client)
	if err != nil {
		return err
	}
	if err := cur.Import(dbFile); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	model := strconv.Itoa(v6.ModelVersion)
	dir := filepath.Join(staging, model)
	desc, err := v6.ReadDescription(filepath.Join(dir, v6.VulnerabilityDBFileName))
	if err != nil {
		return fmt.Errorf("read imported database: %w: %w", ErrCorrupt, err)
	}
	if err := checkSchema(desc.SchemaVersion.String()); err != nil {
		return err
	}
	if st := cur.Status(); st.Error != nil {
		return fmt.Errorf("check imported database: %w: %w", ErrCorrupt, st.Error)
	}

	// Replace root/6: move the old one aside first, so that a failed rename can
	// put it back.
	final := filepath.Join(root, model)
	old := filepath.Join(staging, "previous")
	hadOld := false
	if _, err := os.Stat(final); err == nil {
		if err := os.Rename(final, old); err != nil {
			return fmt.Errorf("move the installed database aside: %w", err)
		}
		hadOld = true
	}
	if err := os.Rename(dir, final); err != nil {
		if hadOld {
			if rerr := os.Rename(old, final); rerr != nil {
				return fmt.Errorf("install: %w (and restoring the previous database: %w)", err, rerr)
			}
		}
		return fmt.Errorf("install: %w", err)
	}
	return nil
}
