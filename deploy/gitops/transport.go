package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/revlist"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/go-git/go-git/v5/storage"
)

// go-git's Remote.Fetch and Remote.Push pick their transport from a process-wide
// table (client.Protocols, changed by client.InstallProtocol) and read the
// server's ref advertisement without a bound. Write fetches and pushes through
// transport sessions of its own, made for the one call, that bound all the
// server sends (bound.go): over HTTP(S) go-git's HTTP client around a net/http
// client that bounds every response; over ssh://, git:// and file://
// streamSession (stream.go), which speaks the protocol over the connection or
// command with go-git's packp encoders and decoders.

// transport returns the transport to the Writer's repository for one fetch or
// push (ctx bounds the connection), its endpoint, and the call's bounds.
func (w *Writer) transport(ctx context.Context) (transport.Transport, *transport.Endpoint, *callBound, error) {
	ep, err := transport.NewEndpoint(w.url)
	if err != nil {
		return nil, nil, nil, err
	}
	b := &callBound{advert: w.o.maxFetchAdvert, pack: w.o.maxFetchBytes}
	switch ep.Protocol {
	case "http", "https":
		return githttp.NewClient(&http.Client{Transport: &httpBound{b: b, next: http.DefaultTransport}}), ep, b, nil
	case "ssh":
		return &streamTransport{ctx: ctx, b: b, open: openSSH}, ep, b, nil
	case "file":
		return &streamTransport{ctx: ctx, b: b, open: openFile}, ep, b, nil
	case "git":
		return &streamTransport{ctx: ctx, b: b, open: openGitDaemon}, ep, b, nil
	}
	return nil, nil, nil, fmt.Errorf("scheme %q is not supported", ep.Protocol)
}

// errNoBranch: the repository, or the branch in it, does not exist yet.
var errNoBranch = errors.New("gitops: no such branch")

// fetchBranch fetches the Writer's branch into r's storage (the bounded pack
// writer of fetchlimit.go) and returns its head, or errNoBranch.
func (w *Writer) fetchBranch(ctx context.Context, r *git.Repository) (_ plumbing.Hash, err error) {
	tr, ep, bound, err := w.transport(ctx)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer bound.close()
	s, err := tr.NewUploadPackSession(ep, w.o.auth)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	ar, err := s.AdvertisedReferencesContext(ctx)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return plumbing.ZeroHash, errNoBranch
	}
	if err != nil {
		return plumbing.ZeroHash, bound.check(err)
	}
	head, ok := ar.References[plumbing.NewBranchReferenceName(w.o.branch).String()]
	if !ok || head.IsZero() {
		return plumbing.ZeroHash, errNoBranch
	}
	if r.Storer.HasEncodedObject(head) == nil {
		return head, nil
	}
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	if ar.Capabilities.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	req.Wants = []plumbing.Hash{head}
	req.Haves = haves(r.Storer, []plumbing.ReferenceName{w.trackingRef(), plumbing.NewBranchReferenceName(w.o.branch)})
	res, err := s.UploadPack(ctx, req)
	if err != nil {
		return plumbing.ZeroHash, bound.check(err)
	}
	defer func() { err = errors.Join(err, res.Close()) }()
	var pack io.Reader = res
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, res)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, res)
	}
	if err := packfile.UpdateObjectStorage(r.Storer, pack); err != nil {
		return plumbing.ZeroHash, bound.check(err)
	}
	if r.Storer.HasEncodedObject(head) != nil {
		return plumbing.ZeroHash, fmt.Errorf("the pack lacks the head commit %s", head)
	}
	return head, nil
}

// maxHaves bounds the commits of each local ref a fetch says it has (go-git's
// own fetch sends up to 100; the server needs one it knows).
const maxHaves = 32

// haves returns the commits the fetch tells the server it has: the heads of
// refs and up to maxHaves of each one's history.
func haves(s storage.Storer, refs []plumbing.ReferenceName) []plumbing.Hash {
	seen := map[plumbing.Hash]bool{}
	var out []plumbing.Hash
	for _, name := range refs {
		ref, err := s.Reference(name)
		if err != nil || ref.Type() != plumbing.HashReference {
			continue
		}
		c, err := object.GetCommit(s, ref.Hash())
		if err != nil {
			continue
		}
		n := 0
		_ = object.NewCommitPreorderIter(c, seen, nil).ForEach(func(c *object.Commit) error {
			seen[c.Hash] = true
			out = append(out, c.Hash)
			if n++; n == maxHaves {
				return storer.ErrStop
			}
			return nil
		})
	}
	return out
}

// errNonFastForward: the branch is not where the new commit's parent is.
var errNonFastForward = errors.New("non-fast-forward update: the branch moved")

// pushCommit updates the Writer's branch from its advertised head to commit,
// sending the objects the server lacks: a fast-forward or nothing (the update
// names the head it replaces, so the server refuses it if the branch moved
// meanwhile).
func (w *Writer) pushCommit(ctx context.Context, r *git.Repository, commit plumbing.Hash) (err error) {
	tr, ep, bound, err := w.transport(ctx)
	if err != nil {
		return err
	}
	defer bound.close()
	s, err := tr.NewReceivePackSession(ep, w.o.auth)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	ar, err := s.AdvertisedReferencesContext(ctx)
	if err != nil {
		return bound.check(err)
	}
	name := plumbing.NewBranchReferenceName(w.o.branch)
	old := ar.References[name.String()]
	if old == commit {
		return nil
	}
	var have []plumbing.Hash
	if !old.IsZero() {
		ff, err := ancestor(r.Storer, old, commit)
		if err != nil {
			return err
		}
		if !ff {
			return errNonFastForward
		}
		have = []plumbing.Hash{old}
	}
	hashes, err := revlist.Objects(r.Storer, []plumbing.Hash{commit}, have)
	if err != nil {
		return err
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(ar.Capabilities)
	req.Commands = []*packp.Command{{Name: name, Old: old, New: commit}}
	pr, pw := io.Pipe()
	req.Packfile = pr
	done := make(chan error, 1)
	go func() {
		_, err := packfile.NewEncoder(pw, r.Storer, !ar.Capabilities.Supports(capability.OFSDelta)).Encode(hashes, 10)
		_ = pw.CloseWithError(err)
		done <- err
	}()
	rs, err := s.ReceivePack(ctx, req)
	_ = pr.CloseWithError(errors.New("push ended")) // unblocks the encoder
	if eerr := <-done; err == nil && eerr != nil {
		err = eerr
	}
	if err != nil {
		return bound.check(err)
	}
	if rs != nil {
		if err := rs.Error(); err != nil {
			return err
		}
	}
	return nil
}

// ancestor reports whether old is commit or one of its ancestors (false when
// old is not in s: someone else's commit this clone never fetched).
func ancestor(s storer.EncodedObjectStorer, old, commit plumbing.Hash) (bool, error) {
	oc, err := object.GetCommit(s, old)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	nc, err := object.GetCommit(s, commit)
	if err != nil {
		return false, err
	}
	return oc.IsAncestor(nc)
}
