package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrPortTaken marks an error caused by a server that could not listen because its
// port was taken between [FreeAddr] and its start. [RetryOnPortTaken] tries again.
var ErrPortTaken = errors.New("port taken")

// FreeAddr returns "127.0.0.1:PORT" with a TCP port that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		return "", fmt.Errorf("release port %s: %w", addr, err)
	}
	return addr, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	addr, err := FreeAddr()
	if err != nil {
		return 0, err
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	return int(ap.Port()), nil
}

// portTakenAttempts is how often [RetryOnPortTaken] calls start.
const portTakenAttempts = 3

// RetryOnPortTaken calls start, which picks a free port and starts a server on it,
// until it returns an error that does not wrap [ErrPortTaken], at most three times.
// It returns the last error.
func RetryOnPortTaken(start func() error) error {
	var err error
	for range portTakenAttempts {
		if err = start(); !errors.Is(err, ErrPortTaken) {
			break
		}
	}
	return err
}

// portTaken reports whether a server's log says that it could not listen because its
// address was in use.
func portTaken(log string) bool {
	return strings.Contains(log, "address already in use")
}
