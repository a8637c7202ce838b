package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// netSwitch cuts a demo node off the network the way a pulled cable does: its
// outbound dials fail with "network is unreachable" (a transient error, unlike a
// gater refusal, which libp2p reports as a deliberate, permanent one), inbound
// connections are refused before the handshake, and open connections are closed.
type netSwitch struct{ down atomic.Bool }

// options returns the libp2p options that put a host behind the switch.
func (s *netSwitch) options() []libp2p.Option {
	return []libp2p.Option{
		libp2p.NoTransports,
		libp2p.Transport(func(u transport.Upgrader, rcmgr network.ResourceManager) (transport.Transport, error) {
			t, err := tcp.NewTCPTransport(u, rcmgr, nil)
			if err != nil {
				return nil, err
			}
			return switchedTransport{t, s}, nil
		}),
		libp2p.ConnectionGater(switchGater{s}),
	}
}

// cut takes the node off the network and closes its connections.
func (s *netSwitch) cut(n network.Network) {
	s.down.Store(true)
	for _, c := range n.Conns() {
		c.Close()
	}
}

func (s *netSwitch) restore() { s.down.Store(false) }

type switchedTransport struct {
	transport.Transport
	s *netSwitch
}

func (t switchedTransport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	if t.s.down.Load() {
		return nil, fmt.Errorf("dial %s: %w", raddr, syscall.ENETUNREACH)
	}
	return t.Transport.Dial(ctx, raddr, p)
}

type switchGater struct{ s *netSwitch }

func (g switchGater) InterceptPeerDial(peer.ID) bool               { return true }
func (g switchGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g switchGater) InterceptAccept(network.ConnMultiaddrs) bool  { return !g.s.down.Load() }
func (g switchGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return !g.s.down.Load()
}
func (g switchGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return !g.s.down.Load(), 0
}
