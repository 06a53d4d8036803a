package gitops

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/net/proxy"
)

// go-git's ssh, git and file transports read the advertisement inside its
// internal package, from a connection or command they open themselves, with no
// way to bound it but to replace them process-wide (client.InstallProtocol).
// streamTransport opens the same connection or command per call and speaks the
// same protocol (go-git's packp encoders and decoders, as its internal session
// does: no multi_ack, haves then done), reading the advertisement through the
// bound.

// stream is one running git-upload-pack or git-receive-pack.
type stream struct {
	stdin  io.WriteCloser
	stdout io.Reader
	stderr *stderrTail  // nil: the transport has none (git://)
	end    func() error // ends it once the protocol is done or abandoned
	kill   func()       // ends it now (the context is done)
}

type opener func(ctx context.Context, service string, ep *transport.Endpoint, auth transport.AuthMethod) (*stream, error)

// streamTransport is a transport.Transport for one call (ctx) over an opener.
type streamTransport struct {
	ctx  context.Context
	b    *callBound
	open opener
}

func (t *streamTransport) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	return t.session(transport.UploadPackServiceName, ep, auth)
}

func (t *streamTransport) NewReceivePackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.ReceivePackSession, error) {
	return t.session(transport.ReceivePackServiceName, ep, auth)
}

func (t *streamTransport) session(service string, ep *transport.Endpoint, auth transport.AuthMethod) (*streamSession, error) {
	st, err := t.open(t.ctx, service, ep, auth)
	if err != nil {
		return nil, err
	}
	return &streamSession{
		ctx: t.ctx, st: st, b: t.b, receive: service == transport.ReceivePackServiceName,
		out:  newBoundedReader(st.stdout, t.b, t.b.advertLimit()),
		stop: context.AfterFunc(t.ctx, st.kill),
	}, nil
}

// streamSession is a transport.UploadPackSession and ReceivePackSession over a
// stream.
type streamSession struct {
	ctx     context.Context // the call's: it ends the stream
	st      *stream
	b       *callBound
	out     *boundedReader
	receive bool
	ar      *packp.AdvRefs
	packRun bool
	stop    func() bool
	once    sync.Once
	err     error
}

func (s *streamSession) AdvertisedReferences() (*packp.AdvRefs, error) {
	return s.AdvertisedReferencesContext(context.Background())
}

// AdvertisedReferencesContext reads the advertisement within the bound; the
// context is the transport's (a done one ends the stream).
func (s *streamSession) AdvertisedReferencesContext(context.Context) (*packp.AdvRefs, error) {
	if s.ar != nil {
		return s.ar, nil
	}
	ar := packp.NewAdvRefs()
	err := s.b.check(ar.Decode(s.out))
	// What follows is bounded too: go-git keeps what it decodes of it.
	if s.receive {
		s.out.reset(s.b.statusLimit())
	} else {
		s.out.reset(s.b.uploadLimit())
	}
	var errLine *pktline.ErrorLine
	switch {
	case errors.Is(err, ErrFetchTooLarge):
		return nil, err
	case err == nil:
	case errors.Is(err, packp.ErrEmptyAdvRefs) && s.receive: // an empty repository
	case errors.Is(err, packp.ErrEmptyAdvRefs):
		return nil, transport.ErrEmptyRemoteRepository
	case errors.As(err, &errLine) && repoNotFound(errLine.Text):
		return nil, fmt.Errorf("%w (the server said: %q)", transport.ErrRepositoryNotFound, errLine.Text)
	case errors.As(err, &errLine):
		return nil, errLine
	default:
		return nil, s.advertFailed(err)
	}
	if !s.receive && ar.IsEmpty() {
		return nil, transport.ErrEmptyRemoteRepository
	}
	transport.FilterUnsupportedCapabilities(ar.Capabilities)
	s.ar = ar
	return ar, nil
}

func (s *streamSession) UploadPack(ctx context.Context, req *packp.UploadPackRequest) (*packp.UploadPackResponse, error) {
	if req.IsEmpty() {
		return nil, transport.ErrEmptyUploadPackRequest
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if _, err := s.AdvertisedReferencesContext(ctx); err != nil {
		return nil, err
	}
	s.packRun = true
	if err := errors.Join(req.UploadRequest.Encode(s.st.stdin), req.UploadHaves.Encode(s.st.stdin, true),
		pktline.NewEncoder(s.st.stdin).Encodef("done\n"), s.st.stdin.Close()); err != nil {
		return nil, s.serverSaid(fmt.Errorf("send the upload-pack request: %w", err))
	}
	res := packp.NewUploadPackResponse(req)
	if err := res.Decode(closeWith{s.out, s}); err != nil {
		return nil, s.serverSaid(fmt.Errorf("decode the upload-pack response: %w", err))
	}
	return res, nil
}

type closeWith struct {
	io.Reader
	c io.Closer
}

func (c closeWith) Close() error { return c.c.Close() }

func (s *streamSession) ReceivePack(ctx context.Context, req *packp.ReferenceUpdateRequest) (*packp.ReportStatus, error) {
	if _, err := s.AdvertisedReferencesContext(ctx); err != nil {
		return nil, err
	}
	s.packRun = true
	if err := errors.Join(req.Encode(s.st.stdin), s.st.stdin.Close()); err != nil {
		return nil, s.serverSaid(fmt.Errorf("send the pack: %w", err))
	}
	if !req.Capabilities.Supports(capability.ReportStatus) {
		return nil, s.Close()
	}
	var r io.Reader = s.out
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		r = sideband.NewDemuxer(sideband.Sideband64k, r)
	case req.Capabilities.Supports(capability.Sideband):
		r = sideband.NewDemuxer(sideband.Sideband, r)
	}
	report := packp.NewReportStatus()
	if err := report.Decode(r); err != nil {
		return nil, s.serverSaid(fmt.Errorf("read the push's status: %w", err))
	}
	return report, nil
}

// Close ends the stream: before any request, with a flush-pkt (which ends the
// service gracefully) and a closed standard input.
func (s *streamSession) Close() error {
	s.once.Do(func() {
		// The context ends the stream until it has ended: a server's hook
		// may keep it running.
		defer s.stop()
		if !s.packRun {
			_, _ = s.st.stdin.Write(pktline.FlushPkt)
			_ = s.st.stdin.Close()
		}
		s.err = s.st.end()
	})
	return s.err
}

// serverSaid adds the first line of the command's standard error, if it wrote
// one before it ended (a repository that does not exist, permissions).
func (s *streamSession) serverSaid(err error) error {
	if s.st.stderr == nil {
		return err
	}
	if line := s.st.stderr.firstLine(s.ctx, time.Second); line != "" {
		return fmt.Errorf("%w (the server said: %q)", err, line)
	}
	return err
}

// advertFailed is the error of an advertisement that could not be read: what
// the server said (on standard error, or instead of the advertisement over
// git://), transport.ErrRepositoryNotFound when that says so, as go-git's own
// transports say.
func (s *streamSession) advertFailed(err error) error {
	var line string
	var data *packp.ErrUnexpectedData
	if errors.As(err, &data) {
		line, _, _ = strings.Cut(strings.TrimSpace(string(data.Data)), "\n")
	}
	if s.st.stderr != nil {
		if l := s.st.stderr.firstLine(s.ctx, time.Second); l != "" {
			line = l
		}
	}
	switch {
	case line == "":
		return err
	case repoNotFound(line):
		return fmt.Errorf("%w: %w (the server said: %q)", transport.ErrRepositoryNotFound, err, line)
	}
	return fmt.Errorf("%w (the server said: %q)", err, line)
}

// repoNotFound reports whether a server's message says the repository does
// not exist or is not readable (the messages go-git's transports look for).
func repoNotFound(msg string) bool {
	for _, s := range []string{
		"Repository not found.",                               // GitHub, git daemon
		"repository does not exist.",                          // Bitbucket
		"does not appear to be a git repository",              // git-upload-pack, git-receive-pack
		"no such repository",                                  // git daemon
		"access denied",                                       // git daemon
		"Repository does not exist or you do not have access", // Gogs
		"The project you were looking for could not be found", // GitLab
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// stderrTail keeps the first KiB of a command's standard error and discards
// the rest.
type stderrTail struct {
	mu   sync.Mutex
	buf  []byte
	done chan struct{}
}

func newStderrTail(r io.Reader) *stderrTail {
	t := &stderrTail{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		p := make([]byte, 1024)
		for {
			n, err := r.Read(p)
			t.mu.Lock()
			t.buf = append(t.buf, p[:min(n, 1024-len(t.buf))]...)
			t.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return t
}

// firstLine returns the first non-empty line written so far, waiting up to wait
// (and while ctx is not done) for the command to end its standard error.
func (t *stderrTail) firstLine(ctx context.Context, wait time.Duration) string {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-t.done:
	case <-ctx.Done():
	case <-timer.C:
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range bytes.Split(t.buf, []byte("\n")) {
		if l := strings.TrimSpace(string(l)); l != "" {
			return l
		}
	}
	return ""
}

// openSSH runs the service over SSH as go-git's ssh transport does: the auth
// method's client config (go-git's default, the SSH agent, without one), its
// host key callback or else known_hosts, the host and port of ~/.ssh/config,
// the proxy of ALL_PROXY and NO_PROXY.
func openSSH(ctx context.Context, service string, ep *transport.Endpoint, auth transport.AuthMethod) (*stream, error) {
	var a gitssh.AuthMethod
	if auth == nil {
		var err error
		if a, err = gitssh.DefaultAuthBuilder(ep.User); err != nil {
			return nil, err
		}
	} else {
		var ok bool
		if a, ok = auth.(gitssh.AuthMethod); !ok {
			return nil, transport.ErrInvalidAuthMethod
		}
	}
	cfg, err := a.ClientConfig()
	if err != nil {
		return nil, err
	}
	addr := sshAddr(ep)
	if cfg.HostKeyCallback == nil {
		db, err := gitssh.NewKnownHostsDb()
		if err != nil {
			return nil, err
		}
		cfg.HostKeyCallback = db.HostKeyCallback()
		cfg.HostKeyAlgorithms = db.HostKeyAlgorithms(addr)
	}
	// Through the proxy of ALL_PROXY (unless NO_PROXY names the host), as
	// go-git's ssh transport dials: x/net/proxy reads them once a process.
	conn, err := proxy.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake honours ctx too.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		stop()
		_ = conn.Close()
		return nil, err
	}
	client := ssh.NewClient(c, chans, reqs)
	end := func() error {
		stop()
		if err := client.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
	sess, err := client.NewSession()
	if err != nil {
		return nil, errors.Join(err, end())
	}
	stdin, err1 := sess.StdinPipe()
	stdout, err2 := sess.StdoutPipe()
	stderr, err3 := sess.StderrPipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, errors.Join(err, end())
	}
	if err := sess.Start(service + " " + shellQuote(ep.Path)); err != nil {
		return nil, errors.Join(err, end())
	}
	return &stream{stdin: stdin, stdout: stdout, stderr: newStderrTail(stderr),
		end: func() error { _ = sess.Close(); return end() }, kill: func() { _ = client.Close() }}, nil
}

// sshAddr is the endpoint's host and port, or those ~/.ssh/config gives its
// host (as go-git's ssh transport reads it).
func sshAddr(ep *transport.Endpoint) string {
	host, port := ep.Host, ep.Port
	if gitssh.DefaultSSHConfig != nil {
		if h := gitssh.DefaultSSHConfig.Get(ep.Host, "Hostname"); h != "" {
			host = h
			if p, err := strconv.Atoi(gitssh.DefaultSSHConfig.Get(ep.Host, "Port")); err == nil {
				port = p
			}
		}
	}
	if port <= 0 {
		port = gitssh.DefaultPort
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// shellQuote quotes s for a POSIX shell as Git's sq_quote_buf does (' and !
// closed, escaped and reopened).
func shellQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\'' || c == '!' {
			b.WriteString(`'\`)
			b.WriteByte(c)
			b.WriteByte('\'')
			continue
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('\'')
	return b.String()
}

// openFile runs git-upload-pack or git-receive-pack on the local repository, as
// go-git's file transport does (from PATH, else from git --exec-path).
func openFile(ctx context.Context, service string, ep *transport.Endpoint, _ transport.AuthMethod) (*stream, error) {
	bin, err := exec.LookPath(service)
	if err != nil {
		out, gerr := exec.CommandContext(ctx, "git", "--exec-path").Output()
		if gerr != nil {
			return nil, fmt.Errorf("%w (and git --exec-path: %w)", err, gerr)
		}
		if bin, err = exec.LookPath(filepath.Join(strings.TrimSpace(string(out)), service)); err != nil {
			return nil, err
		}
	}
	// exec.CommandContext kills the command when ctx is done, before and
	// during Wait.
	cmd := exec.CommandContext(ctx, bin, ep.Path) //nolint:gosec // the repository's own path, as go-git runs it
	stdin, err1 := cmd.StdinPipe()
	stdout, err2 := cmd.StdoutPipe()
	// Standard error is a pipe of our own, not cmd.StderrPipe: the processes of
	// the server's hooks inherit it and may outlive the command (a hook still
	// running when the command is killed, one leaving a process in the
	// background), so end closes it, not Wait.
	errR, errW, err3 := os.Pipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	cmd.Stderr = errW
	err = cmd.Start()
	_ = errW.Close()
	if err != nil {
		_ = errR.Close()
		return nil, err
	}
	tail := newStderrTail(errR)
	return &stream{stdin: stdin, stdout: stdout, stderr: tail,
		end: func() error {
			_ = stdin.Close()
			// What is left (a flush-pkt after the pack, or an advertisement
			// abandoned past the bound) is read up to 64 KiB, then the pipe is
			// closed: a command still writing ends.
			stopDrain := context.AfterFunc(ctx, func() { _ = stdout.Close() })
			_, _ = io.CopyN(io.Discard, stdout, 64<<10)
			stopDrain()
			_ = stdout.Close()
			err := cmd.Wait()
			// What the command wrote to standard error is read; what processes
			// it leaves write is not waited for.
			select {
			case <-tail.done:
			case <-ctx.Done():
			case <-time.After(stderrGrace):
			}
			_ = errR.Close()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return nil // what failed was said on the protocol, or the command was ended
			}
			return err
		},
		kill: func() { _ = cmd.Process.Kill() }}, nil
}

// stderrGrace is how long a local command's standard error is read after the
// command ended.
const stderrGrace = 100 * time.Millisecond

// openGitDaemon connects to a git daemon (git://) as go-git's git transport
// does: no authentication, the request in the first pkt-line.
func openGitDaemon(ctx context.Context, service string, ep *transport.Endpoint, auth transport.AuthMethod) (*stream, error) {
	if auth != nil {
		return nil, transport.ErrInvalidAuthMethod
	}
	port := ep.Port
	if port <= 0 {
		port = 9418
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ep.Host, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	host := ep.Host
	if ep.Port > 0 && ep.Port != 9418 {
		host = net.JoinHostPort(ep.Host, strconv.Itoa(ep.Port))
	}
	req := packp.GitProtoRequest{RequestCommand: service, Pathname: ep.Path, Host: host}
	if err := req.Encode(conn); err != nil {
		_ = conn.Close()
		return nil, err
	}
	closeConn := func() error {
		if err := conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	}
	// The connection's write side stays open until the end: the daemon reads
	// the end of the request from the protocol.
	return &stream{stdin: nopWriteCloser{conn}, stdout: conn, end: closeConn, kill: func() { _ = conn.Close() }}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
