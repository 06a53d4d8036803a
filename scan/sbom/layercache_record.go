package sbom

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/anchore/syft/syft/file"
)

// A call is one question a cataloger asked the file resolver, and a digest of the
// answer it got. A cataloger's result is a function of its answers (see
// [LayerCache]), so replaying the calls against another image's resolver and
// getting the same digests proves the cataloger would return the same result there.
type call struct {
	Op   string `json:"op"`            // resolver method
	Args string `json:"args"`          // its arguments, canonical
	Loc  string `json:"loc,omitempty"` // the location argument (locKey), if any
	Hash string `json:"hash"`          // sha256 of the canonical answer (for contents: see contentAnswer)
}

// locKey names a location by everything a result can carry of it: the real path,
// the path it was asked by, and the layer (diffID) it was found in.
func locKey(l file.Location) string {
	return l.RealPath + "\x00" + l.AccessPath + "\x00" + l.FileSystemID
}

// answerLocs is the canonical answer of a call returning locations, in order,
// with their annotations.
func answerLocs(h hash.Hash, locs []file.Location, err error) {
	fmt.Fprintf(h, "n=%d err=%t\n", len(locs), err != nil)
	for _, l := range locs {
		fmt.Fprintf(h, "%q\n", locKey(l))
		keys := make([]string, 0, len(l.Annotations))
		for k := range l.Annotations {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(h, "  %q=%q\n", k, l.Annotations[k])
		}
	}
}

func sum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// recorder is a file.Resolver that passes every call to the image's resolver and
// logs the call with the digest of its answer. It also keeps every location it
// handed out by locKey, so that locations of a replayed result can be given this
// image's file references.
type recorder struct {
	inner file.Resolver
	mu    sync.Mutex
	calls []call
	locs  map[string]file.Location
	open  int   // readers handed out and not closed yet (their content is not hashed)
	bad   error // set when an answer could not be recorded: the result is not stored
}

func newRecorder(inner file.Resolver) *recorder {
	return &recorder{inner: inner, locs: map[string]file.Location{}}
}

// wrap returns r as the resolver to give the cataloger: with FilesByMediaType
// exactly when the image's resolver has it (syft's generic cataloger checks).
func (r *recorder) wrap() file.Resolver {
	if _, ok := r.inner.(file.OCIMediaTypeResolver); ok {
		return recorderOCI{r}
	}
	return r
}

type recorderOCI struct{ *recorder }

func (r recorderOCI) FilesByMediaType(types ...string) ([]file.Location, error) {
	locs, err := r.inner.(file.OCIMediaTypeResolver).FilesByMediaType(types...)
	r.logLocs("FilesByMediaType", strings.Join(types, "\x00"), "", locs, err)
	return locs, err
}

func (r *recorder) log(c call, locs ...file.Location) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	for _, l := range locs {
		r.locs[locKey(l)] = l
	}
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bad == nil {
		r.bad = err
	}
}

func (r *recorder) logLocs(op, args, loc string, locs []file.Location, err error) {
	h := sha256.New()
	answerLocs(h, locs, err)
	r.log(call{Op: op, Args: args, Loc: loc, Hash: sum(h)}, locs...)
}

func (r *recorder) HasPath(p string) bool {
	ok := r.inner.HasPath(p)
	r.log(call{Op: "HasPath", Args: p, Hash: fmt.Sprint(ok)})
	return ok
}

func (r *recorder) FilesByPath(paths ...string) ([]file.Location, error) {
	locs, err := r.inner.FilesByPath(paths...)
	r.logLocs("FilesByPath", strings.Join(paths, "\x00"), "", locs, err)
	return locs, err
}

func (r *recorder) FilesByGlob(patterns ...string) ([]file.Location, error) {
	locs, err := r.inner.FilesByGlob(patterns...)
	r.logLocs("FilesByGlob", strings.Join(patterns, "\x00"), "", locs, err)
	return locs, err
}

func (r *recorder) FilesByMIMEType(types ...string) ([]file.Location, error) {
	locs, err := r.inner.FilesByMIMEType(types...)
	r.logLocs("FilesByMIMEType", strings.Join(types, "\x00"), "", locs, err)
	return locs, err
}

func (r *recorder) RelativeFileByPath(l file.Location, p string) *file.Location {
	out := r.inner.RelativeFileByPath(l, p)
	var locs []file.Location
	if out != nil {
		locs = []file.Location{*out}
	}
	r.logLocs("RelativeFileByPath", p, locKey(l), locs, nil)
	return out
}

func (r *recorder) AllLocations(ctx context.Context) <-chan file.Location {
	in := r.inner.AllLocations(ctx)
	out := make(chan file.Location)
	go func() {
		defer close(out)
		var all []file.Location
		complete := true
		for l := range in {
			all = append(all, l)
			select {
			case out <- l:
			case <-ctx.Done():
				complete = false
			}
			if !complete {
				break
			}
		}
		if !complete {
			r.fail(errors.New("AllLocations not read to the end"))
			return
		}
		r.logLocs("AllLocations", "", "", all, nil)
	}()
	return out
}

func (r *recorder) FileMetadataByLocation(l file.Location) (file.Metadata, error) {
	m, err := r.inner.FileMetadataByLocation(l)
	r.log(call{Op: "FileMetadataByLocation", Loc: locKey(l), Hash: metadataHash(m, err)})
	return m, err
}

func metadataHash(m file.Metadata, err error) string {
	h := sha256.New()
	fmt.Fprintf(h, "err=%t %q %q %d %d %d %q", err != nil, m.Path, m.LinkDestination, m.UserID, m.GroupID, m.Type, m.MIMEType)
	if m.FileInfo != nil {
		fmt.Fprintf(h, " %q %d %o %d", m.Name(), m.Size(), m.Mode(), m.ModTime().UnixNano())
	}
	return sum(h)
}

// FileContentsByLocation records the bytes the cataloger read, not the whole
// file: the answer is the SHA-256 of what it read, how much, and whether the file
// ends there (seen by the cataloger, or found by reading one byte more on Close).
// A cataloger's result can only depend on what it read and on how the reader
// signalled the end, which is a function of whether the file goes on; so a
// replay that reads the same bytes and finds the end at the same place proves the
// same input, and a file syft stops reading early (its parsers bound what they
// read) is never read further here than one byte.
func (r *recorder) FileContentsByLocation(l file.Location) (io.ReadCloser, error) {
	rc, err := r.inner.FileContentsByLocation(l)
	if err != nil {
		r.log(call{Op: "FileContentsByLocation", Loc: locKey(l), Hash: "error"})
		return rc, err
	}
	r.mu.Lock()
	r.open++
	r.mu.Unlock()
	return &hashingReader{rc: rc, h: sha256.New(), done: func(answer string, err error) {
		r.mu.Lock()
		r.open--
		r.mu.Unlock()
		if err != nil {
			r.fail(fmt.Errorf("read %s: %w", l.RealPath, err))
			return
		}
		r.log(call{Op: "FileContentsByLocation", Loc: locKey(l), Hash: answer})
	}, late: func() { r.fail(fmt.Errorf("read %s after closing it", l.RealPath)) }}, nil
}

// contentAnswer is the canonical answer of a read: digest and length of what was
// read, and whether the file ends there.
func contentAnswer(h hash.Hash, n int64, ends bool) string {
	return fmt.Sprintf("%s n=%d ends=%t", sum(h), n, ends)
}

// endsHere reads one byte more from r: whether r has nothing after what was read.
func endsHere(r io.Reader) (bool, error) {
	var b [1]byte
	k, err := io.ReadFull(r, b[:])
	switch {
	case k == 1:
		return false, nil
	case errors.Is(err, io.EOF):
		return true, nil
	default:
		return false, err
	}
}

type hashingReader struct {
	rc     io.ReadCloser
	h      hash.Hash
	n      int64
	eof    bool
	err    error // a read error the cataloger saw: the answer is not recorded
	done   func(string, error)
	late   func() // a read after Close: the result is not stored
	closed bool
}

func (h *hashingReader) Read(p []byte) (int, error) {
	if h.closed {
		h.late()
	}
	n, err := h.rc.Read(p)
	h.h.Write(p[:n])
	h.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		h.eof = true
	case err != nil && h.err == nil:
		h.err = err
	}
	return n, err
}

func (h *hashingReader) Close() error {
	if h.closed {
		return h.rc.Close()
	}
	h.closed = true
	ends, err := h.eof, h.err
	if !ends && err == nil {
		ends, err = endsHere(h.rc)
	}
	cerr := h.rc.Close()
	h.done(contentAnswer(h.h, h.n, ends), err)
	return cerr
}

// replayContents reads what the recorded answer says the cataloger read (its
// length, and one byte more) and returns the same canonical answer if the bytes
// are the same and the file ends at the same place.
func replayContents(res file.Resolver, l file.Location, recorded string) string {
	rc, err := res.FileContentsByLocation(l)
	if err != nil {
		return "error"
	}
	defer rc.Close()
	var digest string
	var n int64
	var ends bool
	if _, err := fmt.Sscanf(recorded, "%s n=%d ends=%t", &digest, &n, &ends); err != nil || n < 0 {
		return "unparsable"
	}
	h := sha256.New()
	if _, err := io.CopyN(h, rc, n); err != nil {
		return "short"
	}
	endsNow, err := endsHere(rc)
	if err != nil {
		return "unreadable"
	}
	return contentAnswer(h, n, endsNow)
}

// result returns the calls, or an error if any answer went unrecorded (a reader
// left open, an error hashing a file).
func (r *recorder) result() ([]call, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bad != nil {
		return nil, r.bad
	}
	if r.open != 0 {
		return nil, fmt.Errorf("%d files left open", r.open)
	}
	return append([]call(nil), r.calls...), nil
}

// replay asks res every question of calls and reports whether every answer is the
// same as recorded. It returns this image's locations by locKey.
func replay(res file.Resolver, calls []call) (map[string]file.Location, bool) {
	locs := map[string]file.Location{}
	keep := func(ls []file.Location) {
		for _, l := range ls {
			locs[locKey(l)] = l
		}
	}
	hashLocs := func(ls []file.Location, err error) string {
		h := sha256.New()
		answerLocs(h, ls, err)
		keep(ls)
		return sum(h)
	}
	for _, c := range calls {
		var got string
		switch c.Op {
		case "HasPath":
			got = fmt.Sprint(res.HasPath(c.Args))
		case "FilesByPath":
			got = hashLocs(res.FilesByPath(strings.Split(c.Args, "\x00")...))
		case "FilesByGlob":
			got = hashLocs(res.FilesByGlob(strings.Split(c.Args, "\x00")...))
		case "FilesByMIMEType":
			got = hashLocs(res.FilesByMIMEType(strings.Split(c.Args, "\x00")...))
		case "FilesByMediaType":
			oci, ok := res.(file.OCIMediaTypeResolver)
			if !ok {
				return nil, false
			}
			got = hashLocs(oci.FilesByMediaType(strings.Split(c.Args, "\x00")...))
		case "AllLocations":
			ctx, cancel := context.WithCancel(context.Background())
			var all []file.Location
			for l := range res.AllLocations(ctx) {
				all = append(all, l)
			}
			cancel()
			got = hashLocs(all, nil)
		case "RelativeFileByPath", "FileMetadataByLocation", "FileContentsByLocation":
			l, ok := locs[c.Loc]
			if !ok {
				return nil, false
			}
			got = replayAt(res, c, l, hashLocs)
		default:
			return nil, false
		}
		if got != c.Hash {
			return nil, false
		}
	}
	return locs, true
}

func replayAt(res file.Resolver, c call, l file.Location, hashLocs func([]file.Location, error) string) string {
	switch c.Op {
	case "RelativeFileByPath":
		var ls []file.Location
		if out := res.RelativeFileByPath(l, c.Args); out != nil {
			ls = []file.Location{*out}
		}
		return hashLocs(ls, nil)
	case "FileMetadataByLocation":
		return metadataHash(res.FileMetadataByLocation(l))
	default:
		return replayContents(res, l, c.Hash)
	}
}
