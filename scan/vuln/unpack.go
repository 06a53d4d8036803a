package vuln

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/mholt/archives"
)

// Limits of [Import] unless [WithMaxImportBytes] or [WithMaxImportFileBytes] says
// otherwise. grype's v6 databases inflate to about 1–2 GiB today.
const (
	// DefaultMaxImportBytes bounds what an archive may inflate to in all.
	DefaultMaxImportBytes int64 = 4 << 30
	// DefaultMaxImportFileBytes bounds the database file an archive holds.
	DefaultMaxImportFileBytes int64 = 4 << 30
)

// ErrTooLarge is wrapped by the error of [Import] for an archive that inflates past
// its limit, or a database file larger than its limit. The installed database is
// left as it was.
var ErrTooLarge = errors.New("vulnerability database larger than the import limit")

// ImportOption configures [Import].
type ImportOption func(*importConfig)

type importConfig struct {
	maxBytes, maxFileBytes int64
}

// WithMaxImportBytes bounds the bytes an archive may inflate to, headers and entries
// Import skips included. Default: [DefaultMaxImportBytes]. It must be positive.
func WithMaxImportBytes(n int64) ImportOption { return func(c *importConfig) { c.maxBytes = n } }

// WithMaxImportFileBytes bounds the database file (vulnerability.db) an archive
// holds, or a bare database file. Default: [DefaultMaxImportFileBytes]. It must be
// positive.
func WithMaxImportFileBytes(n int64) ImportOption {
	return func(c *importConfig) { c.maxFileBytes = n }
}

// unpack writes the top-level vulnerability.db of the tar archive at src (compressed
// in any format grype's unpacker knows, or not) into dir, within cfg's limits, and
// returns its path.
func unpack(ctx context.Context, src, dir string, cfg importConfig) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer f.Close()
	format, stream, err := archives.Identify(ctx, filepath.Base(src), f)
	if err != nil {
		return "", fmt.Errorf("not a database archive: %w", err)
	}
	var inflated io.Reader
	switch fm := format.(type) {
	case archives.Tar:
		inflated = stream
	case archives.CompressedArchive:
		if _, ok := fm.Extraction.(archives.Tar); !ok {
			return "", fmt.Errorf("a %s archive, not a tar archive", fm.Extension())
		}
		rc, err := fm.Compression.OpenReader(stream)
		if err != nil {
			return "", fmt.Errorf("decompress: %w", err)
		}
		defer rc.Close()
		inflated = rc
	default:
		return "", fmt.Errorf("a %s file, not a tar archive holding %s", format.Extension(), v6.VulnerabilityDBFileName)
	}
	limited := &limitReader{ctx: ctx, r: inflated, limit: cfg.maxBytes}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	out := filepath.Join(dir, v6.VulnerabilityDBFileName)
	found := false
	tr := tar.NewReader(limited)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", limited.cause(fmt.Errorf("read archive: %w", err))
		}
		if hdr.Typeflag != tar.TypeReg || path.Clean(hdr.Name) != v6.VulnerabilityDBFileName {
			continue // read past, and counted, by the next Next
		}
		if found {
			return "", fmt.Errorf("the archive holds %s twice", v6.VulnerabilityDBFileName)
		}
		found = true
		if hdr.Size > cfg.maxFileBytes {
			return "", fmt.Errorf("%w: %s takes %d bytes, more than the limit of %d", ErrTooLarge, v6.VulnerabilityDBFileName, hdr.Size, cfg.maxFileBytes)
		}
		if err := writeFile(out, tr); err != nil {
			return "", limited.cause(err)
		}
	}
	if !found {
		return "", fmt.Errorf("the archive holds no top-level %s", v6.VulnerabilityDBFileName)
	}
	return out, nil
}

// writeFile copies r into a new file at name.
func writeFile(name string, r io.Reader) (err error) {
	w, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("unpack %s: %w", v6.VulnerabilityDBFileName, err)
	}
	return nil
}

// limitReader reads at most limit bytes from r, then fails with ErrTooLarge; it
// also fails once ctx ends.
type limitReader struct {
	ctx      context.Context
	r        io.Reader
	limit    int64
	read     int64
	exceeded bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	if l.read >= l.limit {
		// One byte more tells a stream that ends exactly at the limit from a longer one.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.exceeded = true
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if left := l.limit - l.read; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}

// cause returns err, or an ErrTooLarge naming the limit when the limit is what
// stopped the read (tar may report a cut stream as a format error of its own).
func (l *limitReader) cause(err error) error {
	if l.exceeded || errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("%w: the archive inflates past the limit of %d bytes", ErrTooLarge, l.limit)
	}
	return err
}
