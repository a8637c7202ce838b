package main

import (
	"context"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sys/unix"
)

// listenReusePort listens on addr the way go-libp2p's TCP transport does:
// with SO_REUSEPORT, which lets another SO_REUSEPORT socket bind the same port.
func listenReusePort(t *testing.T, addr string) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestCheckPortsFree: a port held by a SO_REUSEPORT socket (another libp2p
// node) is refused, for the exact address, the wildcard and a WebSocket
// address on it; a free port and port 0 pass.
func TestCheckPortsFree(t *testing.T) {
	// Prove the premise: a second SO_REUSEPORT socket may share the port.
	held := listenReusePort(t, "127.0.0.1:0")
	port := held.Addr().(*net.TCPAddr).Port
	listenReusePort(t, held.Addr().String())

	p := func(s string) string { return strings.ReplaceAll(s, "PORT", strconv.Itoa(port)) }
	for _, s := range []string{"/ip4/127.0.0.1/tcp/PORT", "/ip4/0.0.0.0/tcp/PORT", "/ip4/127.0.0.1/tcp/PORT/ws"} {
		a := ma.StringCast(p(s))
		err := checkPortsFree([]ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), a})
		if err == nil || !strings.Contains(err.Error(), "--listen "+a.String()+": address already in use") {
			t.Errorf("%s: %v, want address already in use", a, err)
		}
		if _, bad := err.(usageError); !bad {
			t.Errorf("%s: %T is not bad input", a, err)
		}
	}
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().(*net.TCPAddr)
	free.Close()
	for _, s := range []string{"/ip4/127.0.0.1/tcp/" + strconv.Itoa(freeAddr.Port), "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/" + strconv.Itoa(port) + "/quic-v1", "/dns4/localhost/tcp/" + strconv.Itoa(port)} {
		if err := checkPortsFree([]ma.Multiaddr{ma.StringCast(s)}); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}
