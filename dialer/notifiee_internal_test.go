package dialer

import (
	"crypto/rand"
	"sync/atomic"
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

// roundCounter is a MetricsTracer that counts failed reconnect rounds.
type roundCounter struct{ failed atomic.Int64 }

func (*roundCounter) DialAttempted(ErrorClass) {}
func (*roundCounter) ConnectJoined()           {}
func (*roundCounter) SwarmBackoffCleared()     {}
func (*roundCounter) ReconnectStarted()        {}
func (*roundCounter) ReconnectSucceeded()      {}
func (c *roundCounter) ReconnectRoundFailed()  { c.failed.Add(1) }
func (*roundCounter) RetryEventDropped()       {}

// notifieeFixture wraps a real host (its swarm answers Connectedness) and
// returns its notifiee and a conn from a peer it has no real connection to.
// With kept, the peer is kept connected, and the returned counter counts the
// failed reconnect rounds of its goroutine.
func notifieeFixture(tb testing.TB, kept bool) (*Host, network.Network, *fakeConn, *roundCounter) {
	tb.Helper()
	raw, err := libp2p.New(libp2p.NoListenAddrs, libp2p.DisableRelay())
	if err != nil {
		tb.Fatal(err)
	}
	rounds := &roundCounter{}
	h, err := Wrap(raw, WithMetricsTracer(rounds))
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
		// No addresses: one permanent attempt, then an hour between rounds: once
		// its first round failed, the goroutine sleeps and reads no wake-up.
		if err := h.SetProfile(id, resilience.RetryConfig{MaxAttempts: 1, InitialDelay: time.Hour, MaxDelay: time.Hour, BackoffMultiplier: 2}); err != nil {
			tb.Fatal(err)
		}
		h.KeepConnected(peer.AddrInfo{ID: id})
	}
	c := &fakeConn{remote: id}
	h.notif.Connected(raw.Network(), c) // a known peer from here on
	h.notif.Disconnected(raw.Network(), c)
	return h, raw.Network(), c, rounds
}

func TestNotifieeEvents(t *testing.T) {
	h, n, c, _ := notifieeFixture(t, false)
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
	h, n, c, rounds := notifieeFixture(t, true)
	kp := (*h.kept.Load())[c.remote]
	if kp == nil {
		t.Fatal("peer not kept")
	}
	// Wait until the goroutine sleeps out its hour between rounds: from then on
	// nobody but this test reads kp.wake.
	deadline := time.Now().Add(time.Minute)
	for rounds.failed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the kept peer's first reconnect round did not fail")
		}
		time.Sleep(time.Millisecond)
	}
	// Drain a wake-up left by the fixture's Disconnected.
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
		h, n, c, _ := notifieeFixture(t, kept)
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
			h, n, c, _ := notifieeFixture(b, tc.kept)
			b.ReportAllocs()
			for b.Loop() {
				h.notif.Connected(n, c)
				h.notif.Disconnected(n, c)
			}
		})
	}
}
