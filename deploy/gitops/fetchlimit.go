package gitops

import (
	"bytes"
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
	// DefaultMaxFetchInflatedBytes bounds what one fetch's objects inflate to
	// ([WithMaxFetchInflatedBytes]): 1 GiB, 4 times [DefaultMaxFetchBytes].
	DefaultMaxFetchInflatedBytes = 1 << 30
	// DefaultMaxFetchAdvertisementBytes bounds the ref advertisement of one
	// fetch or push ([WithMaxFetchAdvertisementBytes]): 8 MiB, some 120,000
	// refs of about 65 bytes each (a hosting service that lists two refs per
	// pull request: 60,000 pull requests).
	DefaultMaxFetchAdvertisementBytes = 8 << 20
)

// ErrFetchTooLarge is wrapped by Write's, Read's and Remove's error when the
// repository sends more than the fetch bounds allow ([WithMaxFetchBytes],
// [WithMaxFetchObjects], [WithMaxFetchInflatedBytes],
// [WithMaxFetchAdvertisementBytes]). The fetch's error names
// the repository (never its credentials) and the bound.
var ErrFetchTooLarge = errors.New("gitops: the repository sent more than the fetch allows")

// WithMaxFetchBytes bounds the pack (compressed, as it arrives) a fetch receives
// (default [DefaultMaxFetchBytes]): past n bytes the fetch stops with
// [ErrFetchTooLarge]. The pack is held whole (in memory without [WithCloneDir],
// in a temporary file in the clone directory with it) and checked against the
// other bounds before go-git reads any of it, so n also bounds that copy. Write
// fetches the branch with its history; with a clone directory each fetch receives
// only what is new. The refs the repository advertises before the pack are
// bounded by [WithMaxFetchAdvertisementBytes]; the rest of the server's answer
// (acknowledgements, the pack in side-band frames) by n, n/64 and 1 MiB more; a
// push's status report by 1 MiB. Past those the fetch or push stops with
// [ErrFetchTooLarge] too.
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

// WithMaxFetchInflatedBytes bounds what a fetch's pack inflates to (default
// [DefaultMaxFetchInflatedBytes]): the sum of its objects' sizes, of its deltas'
// instructions and of the objects those deltas produce. A few compressed bytes
// can declare a huge object (a blob of zeros compresses about 1000 to 1), which
// go-git would inflate whole into memory: the pack is checked first, each
// object's declared size before it is inflated (into nothing), and a pack past n
// is refused with [ErrFetchTooLarge] before go-git reads any of it. go-git's own
// caches while it stores the pack come on top (in the order of 100 MiB at most).
func WithMaxFetchInflatedBytes(n int64) Option {
	return func(o *options) {
		if n < 1 {
			o.errs.Addf("gitops: WithMaxFetchInflatedBytes(%d): must be at least 1", n)
			return
		}
		o.maxFetchInflated = n
	}
}

// WithMaxFetchAdvertisementBytes bounds the ref advertisement (default
// [DefaultMaxFetchAdvertisementBytes]): the list of every ref the repository
// has, which a server sends before each fetch and each push (smart HTTP's GET
// info/refs), go-git reads whole into memory (allocating about 7 times its
// size), and the protocol go-git speaks (v0) cannot filter: a hosting service
// may list every pull request's refs too. Past n bytes the fetch or push stops
// with [ErrFetchTooLarge] naming the repository and the bound, having read n
// bytes and one more.
//
// The bound holds on every transport (https://, http://, ssh://, git://,
// file://), for Write, Read and Remove: each fetch and push makes its transport
// for the one call, never through go-git's process-wide protocol table
// (client.InstallProtocol). Over HTTP(S) that is go-git's HTTP client around a
// net/http client that counts the advertisement; over SSH, git:// and file://
// the connection or command go-git's transport would open (an SSH session
// running git-upload-pack or git-receive-pack, a git daemon connection, the
// local git-upload-pack), spoken with go-git's protocol encoders and decoders.
func WithMaxFetchAdvertisementBytes(n int64) Option {
	return func(o *options) {
		if n < 1 {
			o.errs.Addf("gitops: WithMaxFetchAdvertisementBytes(%d): must be at least 1", n)
			return
		}
		o.maxFetchAdvert = n
	}
}

// go-git hands the pack a fetch receives to its storage's PackfileWriter when it
// has one, and has no other hook on what the remote sends: the storages below are
// go-git's own, with a PackfileWriter that holds the pack within the bounds,
// checks it, and only then gives it to go-git.

// memStorage is go-git's in-memory storage with fetches bounded.
type memStorage struct {
	*memory.Storage
	w *Writer
}

// PackfileWriter returns a bounded writer that, on Close, parses the checked
// pack into the storage.
func (s *memStorage) PackfileWriter() (io.WriteCloser, error) {
	buf := new(bytes.Buffer)
	return &boundedPack{w: s.w, dst: buf,
		finish: func() error {
			r := bytes.NewReader(buf.Bytes())
			if err := checkPack(r, r.Size(), s.w.o.maxFetchObjects, s.w.o.maxFetchInflated); err != nil {
				return err
			}
			return packfile.UpdateObjectStorage(s.Storage, r)
		},
		discard: func() { buf.Reset() },
	}, nil
}

// fsStorage is go-git's storage of a clone directory with fetches bounded.
type fsStorage struct {
	*filesystem.Storage
	w *Writer
}

// PackfileWriter returns a bounded writer into a temporary file of its own in the
// clone directory; on Close the checked pack goes to go-git's pack writer, and
// the file is removed either way (only this file: another Writer's fetch into the
// same directory is left alone).
func (s *fsStorage) PackfileWriter() (io.WriteCloser, error) {
	dir := filepath.Join(s.w.o.cloneDir, "objects", "pack")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "shipkit_fetch_*.pack")
	if err != nil {
		return nil, err
	}
	drop := func() { _ = f.Close(); _ = os.Remove(f.Name()) }
	b := &boundedPack{w: s.w, dst: f, discard: drop}
	b.finish = func() error {
		defer drop()
		if err := checkPack(f, b.n, s.w.o.maxFetchObjects, s.w.o.maxFetchInflated); err != nil {
			return err
		}
		pw, err := s.Storage.PackfileWriter()
		if err != nil {
			return err
		}
		_, err = io.Copy(pw, io.NewSectionReader(f, 0, b.n))
		return errors.Join(err, pw.Close())
	}
	return b, nil
}

// boundedPack holds a pack in dst while it stays within the Writer's byte and
// object bounds; Close checks and stores it (finish) or drops it (discard).
type boundedPack struct {
	w       *Writer
	dst     io.Writer
	finish  func() error
	discard func()
	n       int64
	head    []byte // the pack's header: "PACK", version, object count
	err     error
	closed  bool
}

func (b *boundedPack) Write(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(b.head) < 12 {
		b.head = append(b.head, p[:min(12-len(b.head), len(p))]...)
		if len(b.head) == 12 && string(b.head[:4]) == "PACK" {
			if n := binary.BigEndian.Uint32(b.head[8:]); int64(n) > int64(b.w.o.maxFetchObjects) {
				return 0, b.fail(tooManyObjects(n, b.w.o.maxFetchObjects))
			}
		}
	}
	if b.n+int64(len(p)) > b.w.o.maxFetchBytes {
		return 0, b.fail(fmt.Errorf("%w: a pack of more than %d bytes (WithMaxFetchBytes)",
			ErrFetchTooLarge, b.w.o.maxFetchBytes))
	}
	n, err := b.dst.Write(p)
	b.n += int64(n)
	if err != nil {
		return n, b.fail(err)
	}
	return n, nil
}

func (b *boundedPack) fail(err error) error {
	b.err = err
	return err
}

// Close checks the pack against the bounds and stores it, or discards it when it
// went past a bound or could not be held.
func (b *boundedPack) Close() error {
	if b.closed {
		return b.err
	}
	b.closed = true
	if b.err != nil {
		b.discard()
		return b.err
	}
	if b.n == 0 {
		b.discard()
		return nil // go-git says what an empty pack is
	}
	b.err = b.finish()
	return b.err
}

func tooManyObjects(n uint32, limit int) error {
	return fmt.Errorf("%w: a pack of %d objects, more than %d (WithMaxFetchObjects)", ErrFetchTooLarge, n, limit)
}
