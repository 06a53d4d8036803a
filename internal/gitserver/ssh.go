package gitserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// SSH serves the same repositories over SSH on 127.0.0.1: git-upload-pack and
// git-receive-pack, run by the git CLI, for one client key.
type SSH struct {
	// Addr is host:port; a repository is at ssh://git@Addr/name.git.
	Addr string
	// HostKey is the server's public key, for ssh.FixedHostKey.
	HostKey ssh.PublicKey
	// ClientKey is the PEM (OpenSSH) private key the server accepts.
	ClientKey []byte

	ln     net.Listener
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

// StartSSH starts an SSH server of s's repositories, with fresh ed25519 host and
// client keys; ctx bounds opening its listener. Close stops it.
func (s *Server) StartSSH(ctx context.Context) (*SSH, error) {
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		return nil, err
	}
	clientPub, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(clientPriv, "")
	if err != nil {
		return nil, err
	}
	authorized, err := ssh.NewPublicKey(clientPub)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(authorized.Marshal()) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostSigner)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	srv := &SSH{Addr: ln.Addr().String(), HostKey: hostSigner.PublicKey(), ClientKey: pem.EncodeToMemory(block), ln: ln, cancel: cancel}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.wg.Add(1)
			go func() {
				defer srv.wg.Done()
				s.serveSSH(ctx, c, cfg)
			}()
		}
	}()
	return srv, nil
}

// URL returns the ssh:// URL of repository name.git.
func (x *SSH) URL(name string) string { return "ssh://git@" + x.Addr + "/" + name + ".git" }

// Close stops the server and waits for its connections.
func (x *SSH) Close() {
	x.cancel()
	_ = x.ln.Close()
	x.wg.Wait()
}

func (s *Server) serveSSH(ctx context.Context, c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go s.session(ctx, ch, chReqs)
	}
}

// session runs one exec request: git-upload-pack or git-receive-pack of a
// repository under Root.
func (s *Server) session(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			_ = req.Reply(false, nil) // env, pty-req, ...
			continue
		}
		if len(req.Payload) < 4 {
			_ = req.Reply(false, nil)
			return
		}
		n := binary.BigEndian.Uint32(req.Payload)
		cmdline := string(req.Payload[4:][:min(int(n), len(req.Payload)-4)])
		verb, arg, _ := strings.Cut(cmdline, " ")
		repo := strings.TrimPrefix(strings.Trim(arg, "'\""), "/")
		if (verb != "git-upload-pack" && verb != "git-receive-pack") || repo == "" || strings.Contains(repo, "..") {
			_ = req.Reply(false, nil)
			return
		}
		_ = req.Reply(true, nil)
		cmd := exec.CommandContext(ctx, s.git, strings.TrimPrefix(verb, "git-"), filepath.Join(s.Root, repo))
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		// As sshd, the session ends when the command does, not when the
		// client closes its input (a command that failed read none of it):
		// the copy of the input is not one Wait waits for.
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return
		}
		go func() { _, _ = io.Copy(stdin, ch); _ = stdin.Close() }()
		code := uint32(0)
		if err := cmd.Run(); err != nil {
			code = 1
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = uint32(ee.ExitCode())
			}
			fmt.Fprintf(ch.Stderr(), "gitserver: %v\n", err)
		}
		_ = ch.CloseWrite()
		_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, code))
		return
	}
}
