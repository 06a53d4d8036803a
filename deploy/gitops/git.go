package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/shipkit/shipkit/observe"
)

const remoteName = "origin"

func (w *Writer) write(ctx context.Context, c *content, msg string) (*Result, error) {
	w.event(observe.Started, "", nil)
	res, err := w.writeOnce(ctx, c, msg)
	switch {
	case err != nil:
		w.event(observe.Failed, "", err)
	case res.Changed:
		w.event(observe.Finished, "commit "+res.Commit, nil)
	default:
		w.event(observe.Finished, "unchanged", nil)
	}
	return res, err
}

func (w *Writer) event(p observe.Phase, msg string, err error) {
	w.o.obs.Observe(observe.Event{Stage: "deploy", Step: "gitops " + w.dir, Phase: p, Message: msg, Err: err, Time: time.Now()})
}

func (w *Writer) writeOnce(ctx context.Context, c *content, msg string) (*Result, error) {
	r, err := w.open()
	if err != nil {
		return nil, err
	}
	res := &Result{}
	base, err := w.fetch(ctx, r)
	if err != nil {
		return nil, err
	}
	for {
		commit, diff, err := w.commit(r.Storer, base, c, msg)
		if err != nil {
			return nil, err
		}
		if commit.IsZero() {
			if res.Attempts > 0 {
				w.logger.InfoContext(ctx, "gitops: the branch already holds the release", "branch", w.o.branch, "head", base.String())
			}
			if !base.IsZero() {
				res.Commit = base.String()
			}
			return res, nil
		}
		res.Attempts++
		w.logger.InfoContext(ctx, "gitops: push", "url", w.display, "branch", w.o.branch, "commit", commit.String(), "parent", base.String(), "attempt", res.Attempts)
		w.event(observe.Progress, fmt.Sprintf("push %s to branch %s of %s (attempt %d)", commit, w.o.branch, w.display, res.Attempts), nil)
		perr := w.push(ctx, r, commit)
		if perr == nil {
			res.Commit, res.Changed = commit.String(), true
			res.Added, res.Modified, res.Removed = diff.added, diff.modified, diff.removed
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("gitops: push to %s: %w", w.display, ctx.Err())
		}
		if errors.Is(perr, transport.ErrAuthenticationRequired) || errors.Is(perr, transport.ErrAuthorizationFailed) {
			return nil, fmt.Errorf("gitops: push to %s: %w", w.display, perr)
		}
		// A push fails this way when the branch moved since the fetch: fetch
		// again, and only when it did move, rebase and try again.
		head, err := w.fetch(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("gitops: push to %s: %w (and fetching again: %w)", w.display, perr, err)
		}
		if head == base {
			return nil, fmt.Errorf("gitops: push to %s: %w", w.display, perr)
		}
		if res.Attempts >= w.o.maxAttempts {
			return nil, fmt.Errorf("%w: %d pushes to branch %s of %s (last: %w)", ErrConflict, res.Attempts, w.o.branch, w.display, perr)
		}
		w.event(observe.Progress, fmt.Sprintf("branch %s moved from %s to %s: rebase", w.o.branch, base, head), nil)
		w.logger.InfoContext(ctx, "gitops: the branch moved; rebasing", "branch", w.o.branch, "was", base.String(), "now", head.String())
		base = head
	}
}

// open returns the repository Write works in: a fresh one in memory, or the
// bare clone of WithCloneDir; either way go-git's storage behind the fetch bounds.
func (w *Writer) open() (*git.Repository, error) {
	if w.o.cloneDir == "" {
		r, err := git.Init(&memStorage{Storage: memory.NewStorage(), w: w}, nil)
		if err != nil {
			return nil, fmt.Errorf("gitops: open the local repository: %w", err)
		}
		return w.addRemote(r)
	}
	r, err := git.PlainOpen(w.o.cloneDir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		r, err = git.PlainInit(w.o.cloneDir, true)
	}
	if err != nil {
		return nil, fmt.Errorf("gitops: open the local repository: %w", err)
	}
	fs, ok := r.Storer.(*filesystem.Storage)
	if !ok {
		return nil, fmt.Errorf("gitops: open the local repository: go-git's storage of %s is a %T", w.o.cloneDir, r.Storer)
	}
	if r, err = git.Open(&fsStorage{Storage: fs, w: w}, nil); err != nil {
		return nil, fmt.Errorf("gitops: open the local repository: %w", err)
	}
	rem, err := r.Remote(remoteName)
	if err != nil {
		return w.addRemote(r)
	}
	if urls := rem.Config().URLs; len(urls) != 1 || urls[0] != w.url {
		return nil, fmt.Errorf("gitops: clone directory %s: its origin is not %s", w.o.cloneDir, w.display)
	}
	return r, nil
}

func (w *Writer) addRemote(r *git.Repository) (*git.Repository, error) {
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{w.url}}); err != nil {
		return nil, fmt.Errorf("gitops: open the local repository: %w", err)
	}
	return r, nil
}

func (w *Writer) trackingRef() plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(remoteName, w.o.branch)
}

// fetch fetches the branch and returns its head, zero when the repository or
// the branch does not exist yet.
func (w *Writer) fetch(ctx context.Context, r *git.Repository) (plumbing.Hash, error) {
	track := w.trackingRef()
	head, err := w.fetchBranch(ctx, r)
	switch {
	case err == nil:
	case errors.Is(err, errNoBranch):
		_ = r.Storer.RemoveReference(track)
		return plumbing.ZeroHash, nil
	default:
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return plumbing.ZeroHash, fmt.Errorf("gitops: fetch branch %s of %s: %w", w.o.branch, w.display, err)
	}
	if err := r.Storer.SetReference(plumbing.NewHashReference(track, head)); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitops: fetch branch %s of %s: %w", w.o.branch, w.display, err)
	}
	return head, nil
}

func (w *Writer) push(ctx context.Context, r *git.Repository, commit plumbing.Hash) error {
	local := plumbing.NewBranchReferenceName(w.o.branch)
	if err := r.Storer.SetReference(plumbing.NewHashReference(local, commit)); err != nil {
		return err
	}
	// A fast-forward only, never forced.
	if err := w.pushCommit(ctx, r, commit); err != nil {
		return err
	}
	return r.Storer.SetReference(plumbing.NewHashReference(w.trackingRef(), commit))
}

type diff struct{ added, modified, removed []string }

// commit stores a commit on base whose tree is base's with the directory
// replaced by c, and returns its hash, zero when the tree would not change.
func (w *Writer) commit(s storer.EncodedObjectStorer, base plumbing.Hash, c *content, msg string) (plumbing.Hash, *diff, error) {
	var root plumbing.Hash
	if !base.IsZero() {
		bc, err := object.GetCommit(s, base)
		if err != nil {
			return plumbing.ZeroHash, nil, fmt.Errorf("gitops: read the head commit: %w", err)
		}
		root = bc.TreeHash
	}
	// The directory: a tree of the object files, or nothing when there are none.
	entries := make([]object.TreeEntry, 0, len(c.dir))
	for name, data := range c.dir {
		h, err := writeBlob(s, data)
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Regular, Hash: h})
	}
	sub := object.TreeEntry{Mode: filemode.Dir}
	if len(entries) > 0 {
		h, err := writeTree(s, entries)
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		sub.Hash = h
	}
	tree, err := replace(s, root, strings.Split(w.dir, "/"), sub)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	for _, p := range sortedKeys(c.extra) {
		e := object.TreeEntry{Mode: filemode.Regular}
		if c.extra[p] != nil { // nil: remove the file
			if e.Hash, err = writeBlob(s, c.extra[p]); err != nil {
				return plumbing.ZeroHash, nil, err
			}
		}
		if tree, err = replace(s, tree, strings.Split(p, "/"), e); err != nil {
			return plumbing.ZeroHash, nil, err
		}
	}
	if tree.IsZero() {
		if base.IsZero() {
			return plumbing.ZeroHash, nil, nil // nothing to write to a branch that does not exist
		}
		if tree, err = writeTree(s, nil); err != nil {
			return plumbing.ZeroHash, nil, err
		}
	}
	if tree == root {
		return plumbing.ZeroHash, nil, nil
	}
	// What changed, for the Result.
	old, err := w.oldFiles(s, root, c)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	d := &diff{}
	now := map[string]plumbing.Hash{}
	for _, e := range entries {
		now[path.Join(w.dir, e.Name)] = e.Hash
	}
	for p, data := range c.extra {
		if data != nil {
			now[p] = plumbing.ComputeHash(plumbing.BlobObject, data)
		}
	}
	for p, h := range now {
		if oh, ok := old[p]; !ok {
			d.added = append(d.added, p)
		} else if oh != h {
			d.modified = append(d.modified, p)
		}
	}
	for p := range old {
		if _, ok := now[p]; !ok {
			d.removed = append(d.removed, p)
		}
	}
	slices.Sort(d.added)
	slices.Sort(d.modified)
	slices.Sort(d.removed)

	sig := object.Signature{Name: w.o.authorName, Email: w.o.authorEmail, When: w.o.now()}
	cm := &object.Commit{Author: sig, Committer: sig, Message: msg + files(d), TreeHash: tree}
	if !base.IsZero() {
		cm.ParentHashes = []plumbing.Hash{base}
	}
	o := s.NewEncodedObject()
	if err := cm.Encode(o); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("gitops: commit: %w", err)
	}
	h, err := s.SetEncodedObject(o)
	if err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("gitops: commit: %w", err)
	}
	return h, d, nil
}

// oldFiles returns the files of the tree root that the commit may touch (those
// of the directory and the extra files), by path.
func (w *Writer) oldFiles(s storer.EncodedObjectStorer, root plumbing.Hash, c *content) (map[string]plumbing.Hash, error) {
	old := map[string]plumbing.Hash{}
	if root.IsZero() {
		return old, nil
	}
	t, err := object.GetTree(s, root)
	if err != nil {
		return nil, fmt.Errorf("gitops: read the head tree: %w", err)
	}
	for p := range c.extra {
		if e, err := t.FindEntry(p); err == nil && e.Mode.IsFile() {
			old[p] = e.Hash
		}
	}
	e, err := t.FindEntry(w.dir)
	switch {
	case errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound):
		return old, nil
	case err != nil:
		return nil, fmt.Errorf("gitops: read the head tree: %w", err)
	case e.Mode != filemode.Dir:
		old[w.dir] = e.Hash // a file where the directory goes
		return old, nil
	}
	sub, err := object.GetTree(s, e.Hash)
	if err != nil {
		return nil, fmt.Errorf("gitops: read directory %s: %w", w.dir, err)
	}
	walker := object.NewTreeWalker(sub, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if errors.Is(err, io.EOF) {
			return old, nil
		}
		if err != nil {
			return nil, fmt.Errorf("gitops: read directory %s: %w", w.dir, err)
		}
		if e.Mode != filemode.Dir {
			old[path.Join(w.dir, name)] = e.Hash
		}
	}
}

func files(d *diff) string {
	var b strings.Builder
	for _, l := range []struct {
		title string
		paths []string
	}{{"Added", d.added}, {"Changed", d.modified}, {"Removed", d.removed}} {
		if len(l.paths) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", l.title)
		for _, p := range l.paths {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	return b.String()
}

func writeBlob(s storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	// A file the repository already has is not written again (a clone on disk
	// would write each as a loose object).
	if h := plumbing.ComputeHash(plumbing.BlobObject, data); s.HasEncodedObject(h) == nil {
		return h, nil
	}
	o := s.NewEncodedObject()
	o.SetType(plumbing.BlobObject)
	wr, err := o.Writer()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitops: store a file: %w", err)
	}
	if _, err := io.Copy(wr, bytes.NewReader(data)); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitops: store a file: %w", err)
	}
	if err := wr.Close(); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitops: store a file: %w", err)
	}
	h, err := s.SetEncodedObject(o)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitops: store a file: %w", err)
	}
	return h, nil
}

// writeTree stores a tree of entries, sorted as Git sorts them (a directory
// compares as its name followed by '/').
func writeTree(s storer.EncodedObjectStorer, entries []object.TreeEntry) (plumbing.Hash, error) {
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	t := &object.Tree{Entries: entries}
	o := &plumbing.MemoryObject{}
	if err := t.Encode(o); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitops: store a tree: %w", err)
	}
	if s.HasEncodedObject(o.Hash()) == nil {
		return o.Hash(), nil
	}
	h, err := s.SetEncodedObject(o)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitops: store a tree: %w", err)
	}
	return h, nil
}

// replace returns the tree root (zero: empty) with the entry at parts set to e
// (a zero e.Hash removes it), zero when the result is empty.
func replace(s storer.EncodedObjectStorer, root plumbing.Hash, parts []string, e object.TreeEntry) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	if !root.IsZero() {
		t, err := object.GetTree(s, root)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("gitops: read a tree: %w", err)
		}
		entries = slices.Clone(t.Entries)
	}
	name := parts[0]
	i := slices.IndexFunc(entries, func(x object.TreeEntry) bool { return x.Name == name })
	child := e
	if len(parts) > 1 {
		var cur plumbing.Hash
		if i >= 0 && entries[i].Mode == filemode.Dir {
			cur = entries[i].Hash
		}
		h, err := replace(s, cur, parts[1:], e)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		child = object.TreeEntry{Mode: filemode.Dir, Hash: h}
	}
	child.Name = name
	if i >= 0 {
		entries = slices.Delete(entries, i, i+1)
	}
	if !child.Hash.IsZero() {
		entries = append(entries, child)
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, nil
	}
	return writeTree(s, entries)
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// maxRead bounds what Read reads of the directory: the repository is someone
// else's too.
const maxRead = 64 << 20

// ErrTooLarge is wrapped by Read's error when the directory's files add up to
// more than 64 MiB.
var ErrTooLarge = errors.New("gitops: the directory's files are too large")

// Read fetches the branch and returns the files of the Writer's directory at its
// head, by path in the directory, and the head commit: what a release wrote,
// plus whatever someone else changed there since (Write would undo it). The map
// is empty when the branch or the directory does not exist.
func (w *Writer) Read(ctx context.Context) (map[string][]byte, string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, err := w.open()
	if err != nil {
		return nil, "", err
	}
	head, err := w.fetch(ctx, r)
	if err != nil || head.IsZero() {
		return map[string][]byte{}, "", err
	}
	c, err := object.GetCommit(r.Storer, head)
	if err != nil {
		return nil, "", fmt.Errorf("gitops: read the head commit: %w", err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, "", fmt.Errorf("gitops: read the head tree: %w", err)
	}
	out := map[string][]byte{}
	sub, err := t.Tree(w.dir)
	if errors.Is(err, object.ErrDirectoryNotFound) {
		return out, head.String(), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("gitops: read directory %s: %w", w.dir, err)
	}
	var total int64
	err = sub.Files().ForEach(func(f *object.File) error {
		if total += f.Size; total > maxRead {
			return fmt.Errorf("%w: more than %d bytes in %s", ErrTooLarge, maxRead, w.dir)
		}
		s, err := f.Contents()
		out[f.Name] = []byte(s)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("gitops: read directory %s: %w", w.dir, err)
	}
	return out, head.String(), nil
}

// Remove removes the Writer's directory, and the Argo CD Application or Flux
// Kustomization file it was made with, in one commit (none when they are already
// gone), pushed as Write pushes.
func (w *Writer) Remove(ctx context.Context) (*Result, error) {
	c := &content{dir: map[string][]byte{}, extra: map[string][]byte{}}
	if w.o.argo != nil {
		c.extra[w.o.argo.file(w.dir)] = nil
	}
	if w.o.flux != nil {
		c.extra[w.o.flux.file(w.dir)] = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.write(ctx, c, fmt.Sprintf("shipkit: remove %s\n", w.dir))
}
