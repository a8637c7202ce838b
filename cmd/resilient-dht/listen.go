package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/chiral-network/go-libp2p-resilience/internal/textutil"
)

// Limits on the addresses a node is given. Real addresses are far below them
// (/dns4/<253 chars>/tcp/443/tls/sni/<253 chars>/ws/p2p/<id> is about 620
// bytes and 7 components); above them, libp2p's transport matching costs
// seconds of CPU per address (100 KB of "/ws" took 28 s) before a signal is
// looked at.
const (
	maxAddrBytes      = 1024
	maxAddrComponents = 16
	maxListenAddrs    = 32
)

// parseListenAddrs parses the --listen values: each at most maxAddrBytes and
// maxAddrComponents, at most maxListenAddrs of them, none listed twice (the
// same address in another spelling, such as /ip4/127.0.0.1/tcp/01, counts).
func parseListenAddrs(values []string) ([]ma.Multiaddr, error) {
	if len(values) > maxListenAddrs {
		return nil, fmt.Errorf("--listen: %d addresses, at most %d", len(values), maxListenAddrs)
	}
	out := make([]ma.Multiaddr, 0, len(values))
	seen := make(map[string]string, len(values))
	for _, s := range values {
		if len(s) > maxAddrBytes {
			return nil, fmt.Errorf("--listen %s: longer than %d bytes", textutil.Quote(s), maxAddrBytes)
		}
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("--listen %s: not a multiaddr: %v", textutil.Quote(s), err)
		}
		if err := checkAddrSize("--listen", a); err != nil {
			return nil, err
		}
		if first, dup := seen[string(a.Bytes())]; dup {
			if first == s {
				return nil, fmt.Errorf("--listen %s: listed twice", textutil.Quote(s))
			}
			return nil, fmt.Errorf("--listen %s: the same address as %s, listed twice", textutil.Quote(s), textutil.Quote(first))
		}
		seen[string(a.Bytes())] = s
		out = append(out, a)
	}
	return out, nil
}

// checkBootstrapAddrs applies the address limits to parsed bootstrap peers.
func checkBootstrapAddrs(field string, peers []peer.AddrInfo) error {
	for _, pi := range peers {
		for _, a := range pi.Addrs {
			if err := checkAddrSize(field, a); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkAddrSize(field string, a ma.Multiaddr) error {
	s := a.String()
	switch {
	case len(s) > maxAddrBytes:
		return fmt.Errorf("%s %s: longer than %d bytes", field, textutil.Quote(s), maxAddrBytes)
	case len(a) > maxAddrComponents:
		return fmt.Errorf("%s %s: %d components, at most %d", field, textutil.Quote(s), len(a), maxAddrComponents)
	}
	return nil
}

// checkPortsFree refuses a TCP listen address that another socket already
// uses. go-libp2p's TCP transport listens with SO_REUSEPORT, which lets a
// second process bind the same port and take half of the first one's
// connections; so before the node listens, each fixed TCP port is bound once
// without SO_REUSEPORT (which fails if any socket holds it) and released.
// (QUIC and other UDP listeners already fail on a busy port: go-libp2p binds
// UDP without SO_REUSEPORT.) Another process that binds the port between this
// check and the node's listen is not detected. Errors other than "address in
// use" are left to the node's listen, which reports them.
func checkPortsFree(addrs []ma.Multiaddr) error {
	for _, a := range addrs {
		tcp, ok := tcpPart(a)
		if !ok {
			continue
		}
		l, err := manet.Listen(tcp)
		if errors.Is(err, syscall.EADDRINUSE) {
			return badInput("--listen %s: address already in use (another process listens on it)", textutil.Clip(a.String(), textutil.MaxQuoted))
		}
		if err == nil {
			l.Close()
		}
	}
	return nil
}

// tcpPart returns the /ip4|ip6/.../tcp/PORT prefix of a with a fixed port.
func tcpPart(a ma.Multiaddr) (ma.Multiaddr, bool) {
	if len(a) < 2 || a[1].Code() != ma.P_TCP {
		return nil, false
	}
	switch a[0].Code() {
	case ma.P_IP4, ma.P_IP6:
	default:
		return nil, false
	}
	if a[1].Value() == "0" {
		return nil, false
	}
	return a[:2], true
}

// isLoopbackListener tells whether ln only accepts connections from this machine.
func isLoopbackListener(ln net.Listener) bool {
	tcp, ok := ln.Addr().(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
