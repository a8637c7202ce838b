package dialer_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// The dial scheduler's timing in virtual time (testing/synctest): a fake host
// whose Connect answers at once as the test scripts it, and records when it
// was called.

var errDown = errors.New("fake: network down")

// fakeHost is enough of a host.Host for the dialer. Safe for concurrent use.
type fakeHost struct {
	host.Host // nil: calls the dialer does not make panic
	id        peer.ID
	bus       event.Bus
	net       *fakeNet
}

type fakeNet struct {
	network.Network // nil
	h               *fakeHost

	mu     sync.Mutex
	up     map[peer.ID]bool // reachable peers
	conns  map[peer.ID]bool // connected peers
	dials  map[peer.ID][]time.Duration
	start  time.Time
	notifs []network.Notifiee
}

func newFakeHost(t *testing.T) *fakeHost {
	h := &fakeHost{id: randomID(t), bus: eventbus.NewBus()}
	h.net = &fakeNet{h: h, up: map[peer.ID]bool{}, conns: map[peer.ID]bool{}, dials: map[peer.ID][]time.Duration{}, start: time.Now()}
	return h
}

func (h *fakeHost) ID() peer.ID                    { return h.id }
func (h *fakeHost) Network() network.Network       { return h.net }
func (h *fakeHost) EventBus() event.Bus            { return h.bus }
func (h *fakeHost) Peerstore() peerstore.Peerstore { return fakePeerstore{} }
func (h *fakeHost) Close() error                   { return nil }

func (h *fakeHost) Connect(ctx context.Context, pi peer.AddrInfo) error {
	n := h.net
	n.mu.Lock()
	if n.conns[pi.ID] {
		n.mu.Unlock()
		return nil
	}
	n.dials[pi.ID] = append(n.dials[pi.ID], time.Since(n.start))
	up := n.up[pi.ID]
	if up {
		n.conns[pi.ID] = true
	}
	notifs := append([]network.Notifiee(nil), n.notifs...)
	n.mu.Unlock()
	if !up {
		return errDown
	}
	for _, nf := range notifs {
		nf.Connected(n, &virtualConn{remote: pi.ID, dir: network.DirOutbound})
	}
	return nil
}

func (n *fakeNet) setUp(p peer.ID, up bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.up[p] = up
}

// dialTimes returns the times (since the host was made) of p's dials.
func (n *fakeNet) dialTimes(p peer.ID) []time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]time.Duration(nil), n.dials[p]...)
}

// drop closes p's connection.
func (n *fakeNet) drop(p peer.ID) {
	n.mu.Lock()
	delete(n.conns, p)
	notifs := append([]network.Notifiee(nil), n.notifs...)
	n.mu.Unlock()
	for _, nf := range notifs {
		nf.Disconnected(n, &virtualConn{remote: p})
	}
}

func (n *fakeNet) Notify(nf network.Notifiee) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notifs = append(n.notifs, nf)
}

func (n *fakeNet) StopNotify(nf network.Notifiee) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, x := range n.notifs {
		if x == nf {
			n.notifs = append(n.notifs[:i], n.notifs[i+1:]...)
			return
		}
	}
}

func (n *fakeNet) Peers() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []peer.ID
	for p := range n.conns {
		out = append(out, p)
	}
	return out
}

func (n *fakeNet) Connectedness(p peer.ID) network.Connectedness {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conns[p] {
		return network.Connected
	}
	return network.NotConnected
}

type fakePeerstore struct{ peerstore.Peerstore }

func (fakePeerstore) AddAddrs(peer.ID, []ma.Multiaddr, time.Duration) {}
func (fakePeerstore) Addrs(peer.ID) []ma.Multiaddr                    { return nil }

type virtualConn struct {
	network.Conn
	remote peer.ID
	dir    network.Direction
}

func (c *virtualConn) RemotePeer() peer.ID { return c.remote }
func (c *virtualConn) Stat() network.ConnStats {
	return network.ConnStats{Stats: network.Stats{Direction: c.dir}}
}

// wrapFake wraps a fake host; the Host is closed when the bubble's test ends.
func wrapFake(t *testing.T, opts ...dialer.Option) (*dialer.Host, *fakeHost) {
	t.Helper()
	fh := newFakeHost(t)
	h, err := dialer.Wrap(fh, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h, fh
}

func noJitter(attempts uint32, initial, maxDelay time.Duration) resilience.RetryConfig {
	return resilience.RetryConfig{MaxAttempts: attempts, InitialDelay: initial, MaxDelay: maxDelay, BackoffMultiplier: 2}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRoundTimingVirtual: a round's dials follow its profile exactly, and
// WakeRounds cuts a wait short at the instant it is called.
func TestRoundTimingVirtual(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, fh := wrapFake(t)
		p := randomID(t)
		err := h.ConnectWithConfig(context.Background(), peer.AddrInfo{ID: p}, noJitter(4, time.Second, 4*time.Second))
		if !errors.Is(err, resilience.ErrExhausted) || !errors.Is(err, errDown) {
			t.Fatalf("round = %v, want exhausted and the dial error", err)
		}
		if got, want := fh.net.dialTimes(p), []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}; !equalDurations(got, want) {
			t.Errorf("dials at %v, want %v", got, want)
		}

		q := randomID(t)
		done := make(chan error, 1)
		go func() {
			done <- h.ConnectWithConfig(context.Background(), peer.AddrInfo{ID: q}, noJitter(3, time.Hour, time.Hour))
		}()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		fh.net.setUp(q, true)
		if n := h.WakeRounds(); n != 1 {
			t.Fatalf("WakeRounds woke %d rounds, want 1", n)
		}
		if err := <-done; err != nil {
			t.Fatalf("woken round: %v", err)
		}
		dials := fh.net.dialTimes(q)
		if len(dials) != 2 || dials[1]-dials[0] != 10*time.Second {
			t.Errorf("dials at %v (relative to the host), want the second exactly 10s after the first", dials)
		}
	})
}

// TestInboundConnectionWakesRoundsVirtual: an inbound connection, seen by the
// notifiee, wakes a waiting round at once.
func TestInboundConnectionWakesRoundsVirtual(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, fh := wrapFake(t)
		p := randomID(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = h.ConnectWithConfig(ctx, peer.AddrInfo{ID: p}, noJitter(3, time.Hour, time.Hour)) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		fh.net.setUp(p, true)
		other := randomID(t)
		fh.net.mu.Lock()
		fh.net.conns[other] = true
		fh.net.mu.Unlock()
		h.Network().(*fakeNet).notifs[0].Connected(fh.net, &virtualConn{remote: other, dir: network.DirInbound})
		synctest.Wait()
		if got := fh.net.dialTimes(p); len(got) != 2 || got[1]-got[0] != time.Minute {
			t.Errorf("dials at %v, want the second at the inbound connection, 1m after the first", got)
		}
	})
}

// TestKeepAliveRoundGapIsMaxDelay: between two failed reconnect rounds of a
// kept peer the Host waits the profile's MaxDelay (± JitterFactor/2), whatever
// the jitter strategy; with decorrelated jitter the old code waited anything
// from InitialDelay up.
func TestKeepAliveRoundGapIsMaxDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, fh := wrapFake(t)
		p := randomID(t)
		cfg := noJitter(2, time.Second, 10*time.Second)
		cfg.Jitter = resilience.JitterDecorrelated
		if err := h.SetProfile(p, cfg); err != nil {
			t.Fatal(err)
		}
		h.KeepConnected(peer.AddrInfo{ID: p})
		time.Sleep(25 * time.Second)
		synctest.Wait()
		got := fh.net.dialTimes(p)
		if len(got) < 4 {
			t.Fatalf("dials at %v, want two rounds of two", got)
		}
		if gap := got[2] - got[1]; gap != 10*time.Second {
			t.Errorf("gap between rounds %v (dials at %v), want MaxDelay (10s)", gap, got)
		}
		h.Forget(p)
	})
}

// TestIPDialLimitSpreadsDialsVirtual: dials to peers that share an IP stay
// under the per-IP connection rate (burst 2, one a second here), deferred
// rather than refused; loopback peers are not limited.
func TestIPDialLimitSpreadsDialsVirtual(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, fh := wrapFake(t, dialer.WithIPDialLimit(1, 2))
		shared := ma.StringCast("/ip4/10.99.0.1/tcp/4001")
		var wg sync.WaitGroup
		ids := make([]peer.ID, 4)
		for i := range ids {
			ids[i] = randomID(t)
			fh.net.setUp(ids[i], true)
			wg.Go(func() {
				if err := h.Connect(context.Background(), peer.AddrInfo{ID: ids[i], Addrs: []ma.Multiaddr{shared}}); err != nil {
					t.Errorf("Connect: %v", err)
				}
			})
		}
		wg.Wait()
		var at []time.Duration
		for _, id := range ids {
			at = append(at, fh.net.dialTimes(id)...)
		}
		count := map[time.Duration]int{}
		for _, d := range at {
			count[d]++
		}
		if count[0] != 2 || count[time.Second] != 1 || count[2*time.Second] != 1 {
			t.Errorf("dials at %v, want two at once, then one a second", at)
		}
		loop := randomID(t)
		fh.net.setUp(loop, true)
		start := time.Now()
		if err := h.Connect(context.Background(), peer.AddrInfo{ID: loop, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001")}}); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("a loopback dial waited %v under the per-IP limit", d)
		}
	})
}

// TestProbesLeaveAReserveVirtual: probes to peers that share an IP leave half
// of the per-IP burst untouched (here 2 of 4 at one per second), so that the
// fan-out after a successful probe dials at once instead of one a second.
func TestProbesLeaveAReserveVirtual(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, fh := wrapFake(t, dialer.WithIPDialLimit(1, 4))
		shared := ma.StringCast("/ip4/10.99.0.1/tcp/4001")
		start := time.Now()
		var probes []time.Duration
		for range 3 {
			id := randomID(t)
			if err := h.ConnectOnce(context.Background(), peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{shared}}); !errors.Is(err, errDown) {
				t.Fatalf("probe of a down peer: %v", err)
			}
			probes = append(probes, time.Since(start))
		}
		if want := []time.Duration{0, 0, time.Second}; !equalDurations(probes, want) {
			t.Errorf("probes done at %v, want %v: the third waits for the reserve", probes, want)
		}
		fanOut := time.Now()
		var wg sync.WaitGroup
		for range 2 {
			id := randomID(t)
			fh.net.setUp(id, true)
			wg.Go(func() {
				if _, err := h.Dial(context.Background(), peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{shared}}, dialer.Immediately()); err != nil {
					t.Errorf("fan-out dial: %v", err)
				}
			})
		}
		wg.Wait()
		if d := time.Since(fanOut); d != 0 {
			t.Errorf("the fan-out's two dials took %v, want at once from the reserve", d)
		}
	})
}
