package dialer

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// fakeConn is enough of a network.Conn for the notifiee: a remote peer and stats.
type fakeConn struct {
	network.Conn
	remote peer.ID
}

func (c *fakeConn) RemotePeer() peer.ID          { return c.remote }
func (c *fakeConn) Stat() network.ConnStats      { return network.ConnStats{} }
func (c *fakeConn) IsClosed() bool               { return true }
func (c *fakeConn) Close() error                 { return nil }
func (c *fakeConn) Scope() network.ConnScope     { return nil }
func (c *fakeConn) ID() string                   { return "fake" }
func (c *fakeConn) GetStreams() []network.Stream { return nil }

// notifieeFixture wraps a real host (its swarm answers Connectedness) and
// returns its notifiee and a conn from a peer it has no real connection to.
func notifieeFixture(tb testing.TB, kept bool) (*Host, network.Network, *fakeConn) {
	tb.Helper()
	raw, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableRelay())
	if err != nil {
		tb.Fatal(err)
	}
	h, err := Wrap(raw)
	if err != nil {
		_ = raw.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Close() })
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	if kept {
		// No addresses: one permanent attempt, then an hour between rounds, so the
		// goroutine stays out of the way and the wake channel fills up.
		if err := h.SetProfile(id, resilience.RetryConfig{MaxAttempts: 1, InitialDelay: time.Hour, MaxDelay: time.Hour, BackoffMultiplier: 2}); err != nil {
			tb.Fatal(err)
		}
		h.KeepConnected(peer.AddrInfo{ID: id})
	}
	c := &fakeConn{remote: id}
	h.notif.Connected(raw.Network(), c) // a known peer from here on
	h.notif.Disconnected(raw.Network(), c)
	return h, raw.Network(), c
}

func TestNotifieeEvents(t *testing.T) {
	h, n, c := notifieeFixture(t, false)
	_ = c.remote
	h.notif.Connected(n, c)
	tr, _ := h.mgr.Get(h.keys.key(c.remote))
	if tr.State != resilience.Connected {
		t.Fatalf("after Connected: %v, want Connected", tr.State)
	}
	first := tr.LastSuccess
	h.notif.Connected(n, c) // a second connection is no news
	if tr, _ = h.mgr.Get(h.keys.key(c.remote)); tr.LastSuccess != first {
		t.Fatal("a second Connected recorded another success")
	}
	h.notif.Disconnected(n, c) // the swarm has no connection to the peer: last one gone
	if tr, _ = h.mgr.Get(h.keys.key(c.remote)); tr.State != resilience.Idle {
		t.Fatalf("after Disconnected: %v, want Idle", tr.State)
	}
	// A limited (relayed) connection does not count.
	h.notif.Connected(n, &limitedConn{fakeConn: *c})
	if tr, _ = h.mgr.Get(h.keys.key(c.remote)); tr.State != resilience.Idle {
		t.Fatalf("after a limited Connected: %v, want Idle", tr.State)
	}
}

type limitedConn struct{ fakeConn }

func (c *limitedConn) Stat() network.ConnStats {
	return network.ConnStats{Stats: network.Stats{Limited: true}}
}

func TestNotifieeWakesKeptPeer(t *testing.T) {
	h, n, c := notifieeFixture(t, true)
	kp := (*h.kept.Load())[c.remote]
	if kp == nil {
		t.Fatal("peer not kept")
	}
	// Drain a pending wake-up, if the goroutine has not taken it yet.
	select {
	case <-kp.wake:
	default:
	}
	h.notif.Connected(n, c)
	h.notif.Disconnected(n, c)
	select {
	case <-kp.wake:
	default:
		t.Fatal("Disconnected of a kept peer did not signal its goroutine")
	}
}

func TestNotifieeDoesNotAllocate(t *testing.T) {
	for _, kept := range []bool{false, true} {
		h, n, c := notifieeFixture(t, kept)
		if allocs := testing.AllocsPerRun(1000, func() {
			h.notif.Connected(n, c)
			h.notif.Disconnected(n, c)
		}); allocs != 0 {
			t.Errorf("kept=%v: %v allocations per Connected+Disconnected, want 0", kept, allocs)
		}
	}
}

// BenchmarkNotifiee measures Connected + Disconnected of a known peer (target:
// <= 500 ns per pair, 0 allocs).
func BenchmarkNotifiee(b *testing.B) {
	for _, tc := range []struct {
		name string
		kept bool
	}{{"peer", false}, {"kept_peer", true}} {
		b.Run(tc.name, func(b *testing.B) {
			h, n, c := notifieeFixture(b, tc.kept)
			b.ReportAllocs()
			for b.Loop() {
				h.notif.Connected(n, c)
				h.notif.Disconnected(n, c)
			}
		})
	}
}
