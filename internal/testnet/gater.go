package testnet

import (
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Gater is a connmgr.ConnectionGater for fault injection. It refuses dials to
// and connections from blocked peers, or every dial and accept while
// BlockAll(true) is in force. It only gates new connections: existing ones
// stay open (Node.Isolate closes them). The zero value allows everything.
// A Gater is safe for concurrent use.
//
// Where it refuses:
//   - outbound: before dialing (the dial fails with
//     swarm.ErrGaterDisallowedConnection);
//   - inbound under BlockAll: at accept, before any handshake (the remote's
//     dial fails);
//   - inbound from a blocked peer: only after the security handshake, when the
//     peer ID is known. The remote may already count the conn as established
//     and see its Connect succeed; the conn is closed right after and this
//     side never registers it.
type Gater struct {
	dials   atomic.Int64 // InterceptPeerDial calls: the host's dial attempts
	mu      sync.RWMutex
	all     bool
	blocked map[peer.ID]struct{}
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// Block refuses new connections to and from the given peers.
func (g *Gater) Block(ids ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked == nil {
		g.blocked = make(map[peer.ID]struct{})
	}
	for _, id := range ids {
		g.blocked[id] = struct{}{}
	}
}

// Unblock undoes Block for the given peers.
func (g *Gater) Unblock(ids ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		delete(g.blocked, id)
	}
}

// BlockAll refuses (on = true) or allows again (on = false) every new
// connection, independent of the per-peer blocks.
func (g *Gater) BlockAll(on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.all = on
}

// Allows reports whether a new connection with p would pass the gater.
func (g *Gater) Allows(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	_, blocked := g.blocked[p]
	return !g.all && !blocked
}

// InterceptPeerDial implements connmgr.ConnectionGater. It runs once for
// every dial the host attempts to a peer it is not connected to (before the
// swarm's own dial backoff), so Dials counts them.
func (g *Gater) InterceptPeerDial(p peer.ID) bool {
	g.dials.Add(1)
	return g.Allows(p)
}

// Dials returns how many dials the host has attempted through the gater.
func (g *Gater) Dials() int64 { return g.dials.Load() }

// InterceptAddrDial implements connmgr.ConnectionGater.
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.Allows(p) }

// InterceptAccept implements connmgr.ConnectionGater; the peer is not known
// yet, so only BlockAll applies here.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return !g.all
}

// InterceptSecured implements connmgr.ConnectionGater.
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.Allows(p)
}

// InterceptUpgraded implements connmgr.ConnectionGater. It checks again so a
// connection that was being upgraded while a block went in is refused too.
func (g *Gater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.Allows(c.RemotePeer()), 0
}
