// Package gitops writes rendered, pinned and gated objects to a Git repository
// instead of (or beside) applying them, for a cluster that Argo CD or Flux keeps
// in sync with that repository.
//
// A [Writer] owns one directory of one branch. Write fetches the branch, replaces
// the directory's contents with one YAML file per object, commits and pushes:
//
//   - File names are stable and say what the object is:
//     "<namespace>_<kind>[.<group>]_<name>.yaml" for a namespaced object,
//     "<kind>[.<group>]_<name>.yaml" for a cluster-scoped one (kind in lower case,
//     the group left out for the core group), e.g. shop_deployment.apps_web.yaml,
//     namespace_shop.yaml. Each file is the object as sigs.k8s.io/yaml writes it
//     (keys sorted), so the same objects give the same bytes whatever their order.
//   - The directory is the Writer's: a file in it that names no object given to
//     Write (an object removed from the release, or anything someone else put
//     there) is removed. Files outside it are never touched, except the Argo CD
//     Application or Flux Kustomization file a caller asks for.
//   - A release that changes no file makes no commit: Write reports the branch's
//     head unchanged.
//   - The commit message names the revision, the gate's decision, every image
//     (digests, as the objects name them) and the files added, changed and removed.
//   - Push never forces. When the branch moved meanwhile (another writer pushed),
//     Write fetches it again and puts the directory's contents on top of the new
//     head: a rebase that keeps every other change to the branch and cannot
//     conflict, since the directory is the Writer's. It tries up to
//     [WithMaxAttempts] pushes, then fails with [ErrConflict]. A push refused
//     while the branch did not move (permissions, a protected branch, a hook) is
//     returned as it is, never retried.
//
// Write fetches the branch with its history (into memory, or into the bare clone
// of [WithCloneDir], which then fetches only what is new): a repository's size
// costs memory or disk accordingly, so a fetch is bounded: the pack as it arrives
// ([WithMaxFetchBytes]), its objects ([WithMaxFetchObjects]) and what they
// inflate to ([WithMaxFetchInflatedBytes]), checked before go-git stores any of
// it; past a bound, [ErrFetchTooLarge] naming the repository. The refs the
// repository advertises before a fetch or a push are bounded too
// ([WithMaxFetchAdvertisementBytes]).
// [Writer.Read], which reads file contents, is bounded too ([ErrTooLarge]). [Writer.Render] says what Write would write, for a
// plan; [Writer.Remove] removes the directory.
//
// Secrets are refused ([ErrSecret]) unless the caller opts in with
// [WithSecrets]: a Git repository is the wrong place for Secret data in clear;
// write SealedSecrets, SOPS-encrypted files or ExternalSecrets instead.
// Credentials go in [WithBasicAuth] (a token is the password), [WithSSHKey] or
// [WithAuth], never in the URL, and no error prints them.
//
// The package uses go-git (a pure Go Git); package deploy links none of it.
package gitops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/internal/option"
	"github.com/shipkit/shipkit/observe"
)

// ErrInvalidOption is deploy.ErrInvalidOption: New wraps it when an option (or
// the URL or directory) has a value it cannot use.
var ErrInvalidOption = deploy.ErrInvalidOption

// ErrSecret is wrapped by Write's error when the objects hold a Secret and the
// Writer was not made [WithSecrets]. The error names the Secret, never its data.
var ErrSecret = errors.New("gitops: refusing to write a Secret to Git (use WithSecrets to allow it)")

// ErrConflict is wrapped by Write's error when every push attempt found that the
// branch had moved ([WithMaxAttempts]).
var ErrConflict = errors.New("gitops: the branch kept moving; no push landed")

// Writer writes releases to one directory of one branch of a Git repository.
// It is safe for concurrent use; Writes of one Writer take turns.
type Writer struct {
	url     string
	dir     string
	o       options
	mu      sync.Mutex
	logger  *slog.Logger
	display string // the URL as errors print it
}

type options struct {
	branch      string
	auth        transport.AuthMethod
	authorName  string
	authorEmail string
	maxAttempts int
	secrets     bool
	argo        *ArgoCDApplication
	flux        *FluxKustomization
	logger      *slog.Logger
	obs         observe.Observer
	cloneDir    string
	now         func() time.Time

	maxFetchBytes    int64
	maxFetchObjects  int
	maxFetchInflated int64
	maxFetchAdvert   int64
	errs             option.List
}

// Option configures a [Writer].
type Option func(*options)

// WithBranch names the branch to write to (default "main"). It is created when
// the repository does not have it yet.
func WithBranch(name string) Option {
	return func(o *options) {
		if name == "" || strings.HasPrefix(name, "refs/") || strings.ContainsAny(name, " ~^:?*[\\") || strings.Contains(name, "..") {
			o.errs.Addf("gitops: WithBranch(%q): not a branch name", name)
			return
		}
		o.branch = name
	}
}

// WithBasicAuth authenticates over HTTPS with a user name and a password or
// token (GitHub: any user name, e.g. "x-access-token", and the token; GitLab:
// "oauth2" and the token). Errors never print the password.
func WithBasicAuth(user, password string) Option {
	return func(o *options) {
		if user == "" || password == "" {
			o.errs.Addf("gitops: WithBasicAuth: the user and the password must not be empty")
			return
		}
		o.auth = &githttp.BasicAuth{Username: user, Password: password}
	}
}

// WithAuth authenticates with any go-git transport.AuthMethod, such as
// ssh.NewPublicKeys for an SSH key (with its known_hosts check).
func WithAuth(a transport.AuthMethod) Option {
	return func(o *options) {
		if a == nil {
			o.errs.Addf("gitops: WithAuth(nil)")
			return
		}
		o.auth = a
	}
}

// WithSSHKey authenticates over SSH (ssh:// or user@host:path URLs) with a
// PEM-encoded private key (OpenSSH, PKCS#1 or PKCS#8; passphrase empty for an
// unencrypted one) as user (usually "git"). hostKey checks the server's key and is
// required: knownhosts.New of a known_hosts file, or ssh.FixedHostKey. Errors
// never print the key or the passphrase. As go-git's ssh transport, an SSH
// connection goes through the proxy of ALL_PROXY unless NO_PROXY names its
// host (read once a process, by golang.org/x/net/proxy).
func WithSSHKey(user string, key []byte, passphrase string, hostKey ssh.HostKeyCallback) Option {
	return func(o *options) {
		if user == "" || hostKey == nil {
			o.errs.Addf("gitops: WithSSHKey: needs a user and a host key callback")
			return
		}
		auth, err := gitssh.NewPublicKeys(user, key, passphrase)
		if err != nil {
			o.errs.Addf("gitops: WithSSHKey: the private key does not parse (wrong passphrase, or not PEM)")
			return
		}
		auth.HostKeyCallback = hostKey
		o.auth = auth
	}
}

// WithAuthor sets the commits' author and committer (default "shipkit",
// "shipkit@localhost").
func WithAuthor(name, email string) Option {
	return func(o *options) {
		if name == "" || email == "" || strings.ContainsAny(name+email, "<>\n") {
			o.errs.Addf("gitops: WithAuthor(%q, %q): needs a name and an email without <, > or newlines", name, email)
			return
		}
		o.authorName, o.authorEmail = name, email
	}
}

// WithMaxAttempts bounds the pushes of one Write (default 5): after a push the
// branch moved under, Write rebases and pushes again until n pushes were tried.
func WithMaxAttempts(n int) Option {
	return func(o *options) {
		if n < 1 {
			o.errs.Addf("gitops: WithMaxAttempts(%d): must be at least 1", n)
			return
		}
		o.maxAttempts = n
	}
}

// WithSecrets lets Write commit Secrets as they are (their data base64-encoded,
// not encrypted). Without it a Secret fails Write with [ErrSecret].
func WithSecrets() Option {
	return func(o *options) { o.secrets = true }
}

// WithLogger logs fetches, pushes and rebases (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l == nil {
			o.errs.Addf("gitops: WithLogger(nil)")
			return
		}
		o.logger = l
	}
}

// WithObserver reports each Write's and Remove's progress to o (default:
// observe.Discard): stage "deploy", step "gitops DIR", Started, a Progress
// event for each push and each rebase, then Finished (Message: the commit, or
// "unchanged") or Failed. Events never hold credentials.
func WithObserver(o observe.Observer) Option {
	return func(opts *options) {
		if o == nil {
			opts.errs.Addf("gitops: WithObserver(nil)")
			return
		}
		opts.obs = o
	}
}

// WithCloneDir keeps a bare clone of the repository in dir (created when
// missing, opened when it is a clone of the same URL), so a Write fetches only
// what is new. Without it each Write fetches the branch into memory. One process
// at a time may use a clone directory (Writes of one Writer take turns).
func WithCloneDir(dir string) Option {
	return func(o *options) {
		if dir == "" {
			o.errs.Addf("gitops: WithCloneDir(\"\")")
			return
		}
		o.cloneDir = dir
	}
}

// WithClock sets the time commits are dated with (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now == nil {
			o.errs.Addf("gitops: WithClock(nil)")
			return
		}
		o.now = now
	}
}

// New returns a Writer of the directory dir (a relative, slash-separated path in
// the repository, not its root) of the repository at repoURL (https://, http://,
// ssh://, user@host:path or file://). Credentials go in options, not in the URL.
// Nothing is contacted before Write.
func New(repoURL, dir string, opts ...Option) (*Writer, error) {
	o := options{
		branch: "main", authorName: "shipkit", authorEmail: "shipkit@localhost",
		maxAttempts: 5, maxFetchBytes: DefaultMaxFetchBytes, maxFetchObjects: DefaultMaxFetchObjects, maxFetchInflated: DefaultMaxFetchInflatedBytes,
		maxFetchAdvert: DefaultMaxFetchAdvertisementBytes, logger: slog.New(slog.DiscardHandler), obs: observe.Discard{}, now: time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	display, err := checkURL(repoURL)
	if err != nil {
		o.errs.Add(err)
	} else if httpSecret(o.auth) && plainHTTP(repoURL) {
		o.errs.Addf("gitops: %s (WithBasicAuth or WithAuth) over plain http to %s would send the password in clear: use https (plain http only to a loopback address)", o.auth.Name(), display)
	}
	clean, err := checkDir(dir)
	if err != nil {
		o.errs.Add(err)
	}
	if o.argo != nil {
		o.errs.Add(o.argo.check(clean))
	}
	if o.flux != nil {
		o.errs.Add(o.flux.check(clean))
	}
	if o.argo != nil && o.flux != nil && o.argo.file(clean) == o.flux.file(clean) {
		o.errs.Addf("gitops: the Argo CD Application and the Flux Kustomization both go to %s", o.argo.file(clean))
	}
	if err := o.errs.Err("gitops: New"); err != nil {
		return nil, err
	}
	return &Writer{url: repoURL, dir: clean, o: o, logger: o.logger, display: display}, nil
}

// httpSecret reports whether a sends a secret in an HTTP header (basic auth or a
// bearer token), whichever option set it.
func httpSecret(a transport.AuthMethod) bool {
	switch a.(type) {
	case *githttp.BasicAuth, *githttp.TokenAuth:
		return true
	}
	return false
}

// checkURL refuses a URL with credentials in it and returns how errors print it.
func checkURL(raw string) (string, error) {
	if raw == "" {
		return "", option.Errorf("gitops: the repository URL is empty")
	}
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", option.Errorf("gitops: the repository URL does not parse")
		}
		if _, ok := u.User.Password(); ok {
			return "", option.Errorf("gitops: the repository URL %s holds a password: pass it with WithBasicAuth", u.Redacted())
		}
		switch u.Scheme {
		case "https", "http", "ssh", "git", "file":
		default:
			return "", option.Errorf("gitops: the repository URL %s: scheme %q is not https, http, ssh, git or file", u.Redacted(), u.Scheme)
		}
		return u.Redacted(), nil
	}
	return raw, nil // scp-like user@host:path, or a local path
}

// plainHTTP reports whether raw is an http:// URL of a host other than a
// loopback address.
func plainHTTP(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return false
	}
	if u.Hostname() == "localhost" {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip == nil || !ip.IsLoopback()
}

func checkDir(dir string) (string, error) {
	if dir == "" || strings.HasPrefix(dir, "/") || strings.Contains(dir, "\\") {
		return "", option.Errorf("gitops: directory %q: must be a relative, slash-separated path", dir)
	}
	clean := path.Clean(dir)
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", option.Errorf("gitops: directory %q: must be a directory inside the repository, not its root", dir)
	}
	for _, p := range strings.Split(clean, "/") {
		if p == ".git" {
			return "", option.Errorf("gitops: directory %q: must not be in .git", dir)
		}
	}
	return clean, nil
}

// Result says what a Write did.
type Result struct {
	// Commit is the branch's head after Write: the new commit, or the head Write
	// found when nothing changed (empty when the branch does not exist).
	Commit string
	// Changed reports whether Write made (and pushed) a commit.
	Changed bool
	// Attempts counts the pushes tried (0 when nothing changed at the first look).
	Attempts int
	// Added, Modified and Removed list the files (paths in the repository) the
	// commit adds, changes and removes, sorted.
	Added, Modified, Removed []string
}

// Write writes objs to the Writer's directory as one commit on its branch and
// pushes it, or makes no commit when the directory already holds exactly these
// objects. decision is the gate's decision about objs: a denied or missing
// decision writes nothing (a denial's error matches sign.ErrDenied). A caller
// with no gate passes &deploy.Decision{}.
func (w *Writer) Write(ctx context.Context, objs []*unstructured.Unstructured, decision *deploy.Decision) (*Result, error) {
	if decision == nil {
		return nil, errors.New("gitops: write: no gate decision (pass &deploy.Decision{} to write ungated objects)")
	}
	if err := decision.Err(); err != nil {
		return nil, fmt.Errorf("gitops: write: %w", err)
	}
	files, err := w.render(objs)
	if err != nil {
		return nil, err
	}
	msg := message(w.dir, objs, decision)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.write(ctx, files, msg)
}

// Render returns the files Write would write to the directory for objs, by
// name (the Argo CD or Flux file aside), or the error Write would return for
// them: what a plan shows before anything is written.
func (w *Writer) Render(objs []*unstructured.Unstructured) (map[string][]byte, error) {
	c, err := w.render(objs)
	if err != nil {
		return nil, err
	}
	return c.dir, nil
}
