package gitops_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/shipkit/shipkit/deploy"
	"github.com/shipkit/shipkit/deploy/gitops"
)

// socks5 is a SOCKS5 proxy (no authentication, CONNECT only) on 127.0.0.1
// that records the addresses it connected to.
type socks5 struct {
	ln      net.Listener
	mu      sync.Mutex
	targets []string
}

func startSOCKS5(t *testing.T) *socks5 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &socks5{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *socks5) serve(c net.Conn) {
	defer func() { _ = c.Close() }()
	head := make([]byte, 2) // version, number of methods
	if _, err := io.ReadFull(c, head); err != nil || head[0] != 5 {
		return
	}
	if _, err := io.ReadFull(c, make([]byte, head[1])); err != nil {
		return
	}
	if _, err := c.Write([]byte{5, 0}); err != nil { // no authentication
		return
	}
	req := make([]byte, 4) // version, command, reserved, address type
	if _, err := io.ReadFull(c, req); err != nil || req[1] != 1 {
		return
	}
	var host string
	switch req[3] {
	case 1, 4: // IPv4, IPv6
		ip := make([]byte, map[byte]int{1: 4, 4: 16}[req[3]])
		if _, err := io.ReadFull(c, ip); err != nil {
			return
		}
		host = net.IP(ip).String()
	case 3: // a name
		n := make([]byte, 1)
		if _, err := io.ReadFull(c, n); err != nil {
			return
		}
		name := make([]byte, n[0])
		if _, err := io.ReadFull(c, name); err != nil {
			return
		}
		host = string(name)
	default:
		return
	}
	port := make([]byte, 2)
	if _, err := io.ReadFull(c, port); err != nil {
		return
	}
	target := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port))))
	p.mu.Lock()
	p.targets = append(p.targets, target)
	p.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		_, _ = c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}) // connection refused
		return
	}
	defer func() { _ = up.Close() }()
	if _, err := c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
		return
	}
	go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
	_, _ = io.Copy(c, up)
}

func (p *socks5) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

// The child process of TestSSHThroughProxy (x/net/proxy reads ALL_PROXY and
// NO_PROXY once a process): it writes one release over SSH.
func TestHelperProcessSSH(t *testing.T) {
	spec := os.Getenv("SHIPKIT_GITOPS_SSH_CHILD")
	if spec == "" {
		t.Skip("run by TestSSHThroughProxy as a child process")
	}
	var args struct {
		URL     string
		Key     []byte
		HostKey []byte
	}
	require.NoError(t, json.Unmarshal([]byte(spec), &args))
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey(args.HostKey)
	require.NoError(t, err)
	w, err := gitops.New(args.URL, "shop", gitops.WithSSHKey("git", args.Key, "", ssh.FixedHostKey(hostKey)))
	require.NoError(t, err)
	res, err := w.Write(t.Context(), release(digestA), &deploy.Decision{})
	require.NoError(t, err)
	fmt.Printf("RESULT %s\n", res.Commit)
}

// TestSSHThroughProxy: ssh:// dials through the SOCKS5 proxy of ALL_PROXY, as
// go-git's ssh transport does, and directly to a host NO_PROXY names.
func TestSSHThroughProxy(t *testing.T) {
	s := startServer(t)
	seed(t, s, "fleet")
	x, err := s.StartSSH(t.Context())
	require.NoError(t, err)
	t.Cleanup(x.Close)
	spec, err := json.Marshal(map[string]any{"URL": x.URL("fleet"), "Key": x.ClientKey, "HostKey": ssh.MarshalAuthorizedKey(x.HostKey)})
	require.NoError(t, err)
	for _, tt := range []struct {
		name, noProxy string
		proxied       []string
	}{
		{"ALL_PROXY", "", []string{x.Addr, x.Addr}}, // the fetch, the push
		{"NO_PROXY", "127.0.0.1", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startSOCKS5(t)
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcessSSH$", "-test.count=1")
			var env []string
			for _, e := range os.Environ() {
				if name, _, _ := strings.Cut(e, "="); !strings.EqualFold(name, "ALL_PROXY") && !strings.EqualFold(name, "NO_PROXY") {
					env = append(env, e)
				}
			}
			cmd.Env = append(env, "SHIPKIT_GITOPS_SSH_CHILD="+string(spec), "ALL_PROXY=socks5://"+p.ln.Addr().String(), "NO_PROXY="+tt.noProxy)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			assert.Contains(t, string(out), "RESULT ")
			assert.Equal(t, tt.proxied, p.seen(), "what the proxy connected to")
		})
	}
}
