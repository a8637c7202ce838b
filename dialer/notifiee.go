package dialer

import (
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// notifiee feeds the swarm's connection events into the trackers. Its callbacks
// run synchronously inside the swarm, so each does O(1) work: one in-place update
// of the peer's tracker, a read of the swarm's connectedness and, for a kept
// peer, a non-blocking wake-up of the goroutine that reconnects it. It never
// dials, sleeps, emits events or takes a lock held across I/O.
type notifiee struct{ h *Host }

var _ network.Notifiee = (*notifiee)(nil)

// markConnected records a success unless the tracker already shows Connected (a
// second connection to the same peer is no news).
func markConnected(t *resilience.ConnectionTracker) {
	if t.State != resilience.Connected {
		t.RecordSuccess()
	}
}

// Connected moves the peer's tracker to Connected. Limited (relayed) connections
// do not count, as for Connect. An inbound connection is evidence that the
// network works: it asks the Host to wake the rounds waiting out their backoff
// (a non-blocking send; the Host's wake loop does the rest).
func (n *notifiee) Connected(_ network.Network, c network.Conn) {
	st := c.Stat()
	if st.Limited {
		return
	}
	n.h.mgr.Modify(n.h.keys.key(c.RemotePeer()), markConnected)
	if st.Direction == network.DirInbound {
		select { // a peer reached us: rounds waiting out their backoff dial now
		case n.h.wake <- struct{}{}:
		default:
		}
	}
}

// Disconnected moves the peer's tracker from Connected to Idle when its last
// (non-limited) connection closed, and wakes the reconnect goroutine of a kept
// peer. The connectedness is read under the tracker's lock, so a Connected event
// for a new connection that races with this one cannot be overwritten.
func (n *notifiee) Disconnected(net network.Network, c network.Conn) {
	p := c.RemotePeer()
	gone := false
	n.h.mgr.ModifyExisting(n.h.keys.key(p), func(t *resilience.ConnectionTracker) {
		if net.Connectedness(p) != network.Connected {
			gone = true
			t.RecordDisconnect()
		}
	})
	if !gone {
		return
	}
	if kp := (*n.h.kept.Load())[p]; kp != nil {
		kp.signal()
	}
}

// Listen implements network.Notifiee; it does nothing.
func (n *notifiee) Listen(network.Network, ma.Multiaddr) {}

// ListenClose implements network.Notifiee; it does nothing.
func (n *notifiee) ListenClose(network.Network, ma.Multiaddr) {}
