// Package gitserver runs a real Git server for tests: Git's own git http-backend
// behind net/http/cgi on 127.0.0.1, with HTTP basic auth, serving bare
// repositories in a directory. It needs the git CLI (Debian's git package); without
// it Start's error wraps testbed.ErrMissing.
package gitserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shipkit/shipkit/internal/testbed"
)

// Server serves the bare repositories under Root over HTTP.
type Server struct {
	// URL is the server's base URL (http://127.0.0.1:port); a repository is at
	// URL/name.git.
	URL string
	// Root holds the bare repositories.
	Root string
	// User and Password are the basic-auth credentials every request needs.
	User, Password string

	srv     *httptest.Server
	git     string
	barrier *barrier
	mu      sync.Mutex
	pushes  int
}

// HoldPushes makes the next n pushes (their ref advertisements, GET
// info/refs?service=git-receive-pack) wait until all n have arrived (or 30 s
// passed), so n writers see the same head and all but one must rebase. Later
// pushes do not wait.
func (s *Server) HoldPushes(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.barrier = &barrier{n: n, ch: make(chan struct{})}
}

type barrier struct {
	mu      sync.Mutex
	n, seen int
	ch      chan struct{}
}

func (b *barrier) wait(ctx context.Context) {
	b.mu.Lock()
	b.seen++
	seen := b.seen
	if seen == b.n {
		close(b.ch)
	}
	b.mu.Unlock()
	if seen > b.n {
		return
	}
	select {
	case <-b.ch:
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
}

// Start starts a server of the repositories in root, with the credentials user
// and password; ctx bounds finding git. Close stops it.
func Start(ctx context.Context, root, user, password string) (*Server, error) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		return nil, testbed.Missingf("gitserver: the git CLI")
	}
	out, err := exec.CommandContext(ctx, gitBin, "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("gitserver: git --exec-path: %w", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		return nil, testbed.Missingf("gitserver: %s", backend)
	}
	s := &Server{Root: root, User: user, Password: password, git: gitBin}
	h := &cgi.Handler{
		Path:   backend,
		Stderr: io.Discard, // a refused push's "cannot lock ref" goes to the client

		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER=" + user,
			"HOME=" + root,
			"GIT_CONFIG_NOSYSTEM=1",
		},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/info/refs") && r.URL.Query().Get("service") == "git-receive-pack" {
			s.mu.Lock()
			b := s.barrier
			s.mu.Unlock()
			if b != nil {
				b.wait(r.Context())
			}
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			s.mu.Lock()
			s.pushes++
			s.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Pushes counts the pushes (receive-pack requests) the server has received.
func (s *Server) Pushes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pushes
}

// Init creates an empty bare repository name.git (default branch main) that
// accepts pushes, and returns its URL (without credentials).
func (s *Server) Init(ctx context.Context, name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\\") {
		return "", errors.New("gitserver: bad repository name")
	}
	dir := filepath.Join(s.Root, name+".git")
	if err := s.Git(ctx, "", "init", "--quiet", "--bare", "--initial-branch=main", dir); err != nil {
		return "", err
	}
	if err := s.Git(ctx, dir, "config", "http.receivepack", "true"); err != nil {
		return "", err
	}
	return s.URL + "/" + name + ".git", nil
}

// AuthURL returns the URL of repository name.git with the credentials in it, for
// the git CLI.
func (s *Server) AuthURL(name string) string {
	return strings.Replace(s.URL, "http://", "http://"+s.User+":"+s.Password+"@", 1) + "/" + name + ".git"
}

// Git runs the git CLI in dir (none: the current directory) with a clean
// configuration and returns an error with its output when it fails.
func (s *Server) Git(ctx context.Context, dir string, args ...string) error {
	_, err := s.Output(ctx, dir, args...)
	return err
}

// Output runs the git CLI as [Server.Git] does and returns its standard output.
func (s *Server) Output(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.git, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@localhost",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@localhost")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("gitserver: git %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}
