package gitops

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// Defaults of the fetch bounds.
const (
	// DefaultMaxFetchBytes bounds the pack one fetch receives ([WithMaxFetchBytes]).
	DefaultMaxFetchBytes = 256 << 20
	// DefaultMaxFetchObjects bounds the objects one fetch receives
	// ([WithMaxFetchObjects]).
	DefaultMaxFetchObjects = 1_000_000
)

// ErrFetchTooLarge is wrapped by Write's, Read's and Remove's error when the
// repository sends more than the fetch bounds allow ([WithMaxFetchBytes],
// [WithMaxFetchObjects]). The fetch's error names the repository (never its
// credentials) and the bound.
var ErrFetchTooLarge = errors.New("gitops: the repository sent more than the fetch allows")

// WithMaxFetchBytes bounds the pack a fetch receives (default
// [DefaultMaxFetchBytes]): past n bytes the fetch stops with [ErrFetchTooLarge].
// Write fetches the branch with its history, into memory without [WithCloneDir]:
// n bounds what a huge or hostile repository can make it hold. With a clone
// directory each fetch receives only what is new.
func WithMaxFetchBytes(n int64) Option {
	return func(o *options) {
		if n < 1 {
			o.errs.Addf("gitops: WithMaxFetchBytes(%d): must be at least 1", n)
			return
		}
		o.maxFetchBytes = n
	}
}

// WithMaxFetchObjects bounds the objects (commits, trees, blobs) a fetch receives
// (default [DefaultMaxFetchObjects]): a pack that announces more is refused with
// [ErrFetchTooLarge] before any is read.
func WithMaxFetchObjects(n int) Option {
	return func(o *options) {
		if n < 1 {
			o.errs.Addf("gitops: WithMaxFetchObjects(%d): must be at least 1", n)
			return
		}
		o.maxFetchObjects = n
	}
}

// go-git hands the pack a fetch receives to its storage's PackfileWriter when it
// has one, and has no other hook on what the remote sends: the storages below are
// go-git's own, with a PackfileWriter that counts.

// memStorage is go-git's in-memory storage with fetches bounded: the pack is
// parsed into it as it arrives, through a pipe.
type memStorage struct {
	*memory.Storage
	w *Writer
}

// PackfileWriter returns a bounded writer that parses the pack into the storage.
func (s *memStorage) PackfileWriter() (io.WriteCloser, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := packfile.UpdateObjectStorage(s.Storage, pr)
		pr.CloseWithError(err) // unblock the writer if the parser stopped early
		done <- err
	}()
	return &boundedPack{w: s.w, dst: pw,
		close: func() error { _ = pw.Close(); return <-done },
		abort: func(err error) error { _ = pw.CloseWithError(err); return <-done },
	}, nil
}

// fsStorage is go-git's storage of a clone directory with fetches bounded.
type fsStorage struct {
	*filesystem.Storage
	w *Writer
}

// PackfileWriter returns go-git's pack writer behind a bound. A pack cut short
// leaves go-git's temporary pack file behind: it is removed.
func (s *fsStorage) PackfileWriter() (io.WriteCloser, error) {
	pw, err := s.Storage.PackfileWriter()
	if err != nil {
		return nil, err
	}
	return &boundedPack{w: s.w, dst: pw, close: pw.Close, abort: func(error) error {
		err := pw.Close() // fails: the pack is incomplete
		tmp, _ := filepath.Glob(filepath.Join(s.w.o.cloneDir, "objects", "pack", "tmp_pack_*"))
		for _, f := range tmp {
			_ = os.Remove(f)
		}
		return err
	}}, nil
}

// boundedPack passes a pack on to dst while it stays within the Writer's bounds.
type boundedPack struct {
	w     *Writer
	dst   io.Writer
	close func() error
	abort func(error) error // returns the cut pack's own error, which says less than the bound's
	n     int64
	head  []byte // the pack's header: "PACK", version, object count
	err   error
}

func (b *boundedPack) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(b.head) < 12 {
		b.head = append(b.head, p[:min(12-len(b.head), len(p))]...)
		if len(b.head) == 12 && string(b.head[:4]) == "PACK" {
			if n := binary.BigEndian.Uint32(b.head[8:]); int64(n) > int64(b.w.o.maxFetchObjects) {
				return 0, b.fail(fmt.Errorf("%w: a pack of %d objects, more than %d (WithMaxFetchObjects)",
					ErrFetchTooLarge, n, b.w.o.maxFetchObjects))
			}
		}
	}
	if b.n+int64(len(p)) > b.w.o.maxFetchBytes {
		return 0, b.fail(fmt.Errorf("%w: a pack of more than %d bytes (WithMaxFetchBytes)",
			ErrFetchTooLarge, b.w.o.maxFetchBytes))
	}
	b.n += int64(len(p))
	return b.dst.Write(p)
}

func (b *boundedPack) fail(err error) error {
	b.err = err
	return err
}

// Close finishes the pack, or discards it when it went past a bound.
func (b *boundedPack) Close() error {
	if b.err != nil {
		_ = b.abort(b.err)
		return b.err
	}
	return b.close()
}
