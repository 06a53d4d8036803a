package rollout_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
)

// cutProxy forwards TCP connections to an API server until cut, when it closes its
// listener and every connection: to its clients, the API server has gone away.
type cutProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

// proxied returns a copy of cfg that reaches the API server through a new cutProxy.
func proxied(t *testing.T, cfg *rest.Config) (*rest.Config, *cutProxy) {
	t.Helper()
	u, err := url.Parse(cfg.Host)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{l: l, target: u.Host}
	t.Cleanup(p.Cut)
	go p.serve()
	out := rest.CopyConfig(cfg)
	u.Host = l.Addr().String()
	out.Host = u.String()
	if out.ServerName == "" {
		out.ServerName = "127.0.0.1" // the serving certificate's name, not the proxy's port
	}
	return out, p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, up) {
			return
		}
		go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
		go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
	}
}

// track remembers the connections, or closes them when the proxy was cut meanwhile.
func (p *cutProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

// Cut closes the listener and every connection.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	_ = p.l.Close()
	for _, c := range p.conns {
		_ = c.Close()
	}
}
