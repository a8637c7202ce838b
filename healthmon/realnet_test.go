package healthmon_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/chiral-network/go-libp2p-resilience/bootstrap"
	"github.com/chiral-network/go-libp2p-resilience/healthmon"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/netwatch"
)

// realWait bounds waits in tests with real hosts (slow shared machine).
const realWait = 90 * time.Second

// connectRecoverer is a plain Recoverer for tests with real hosts: Probe dials the
// next peer of its list with host.Connect, Recover dials them all and refreshes
// the DHT's routing table. It clears the swarm's dial backoff before each dial, as
// the dialer's ConnectOnce does. Safe for concurrent use.
type connectRecoverer struct {
	h     host.Host
	d     *dht.IpfsDHT
	peers []peer.AddrInfo

	probeLog
	mu       sync.Mutex
	next     int
	recovers []time.Time
	dials    int
	inflight int
}

func (r *connectRecoverer) enter() func() {
	r.mu.Lock()
	r.inflight++
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.inflight--
		r.mu.Unlock()
	}
}

// idle reports whether no call is in flight.
func (r *connectRecoverer) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight == 0
}

func (r *connectRecoverer) dial(ctx context.Context, pi peer.AddrInfo) error {
	if sw, ok := r.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(pi.ID)
	}
	r.mu.Lock()
	r.dials++
	r.mu.Unlock()
	return r.h.Connect(ctx, pi)
}

func (r *connectRecoverer) Probe(ctx context.Context) error {
	defer r.enter()()
	r.mu.Lock()
	pi := r.peers[r.next%len(r.peers)]
	r.next++
	r.mu.Unlock()
	at := time.Now()
	err := r.dial(ctx, pi)
	r.record(at, err)
	return err
}

func (r *connectRecoverer) Recover(ctx context.Context) error {
	defer r.enter()()
	r.mu.Lock()
	r.recovers = append(r.recovers, time.Now())
	r.mu.Unlock()
	errs := make([]error, len(r.peers))
	var wg sync.WaitGroup
	for i, pi := range r.peers {
		wg.Go(func() { errs[i] = r.dial(ctx, pi) })
	}
	wg.Wait()
	ok := false
	for _, err := range errs {
		ok = ok || err == nil
	}
	if !ok {
		return errors.Join(errs...)
	}
	if r.d != nil {
		select {
		case err := <-r.d.RefreshRoutingTable():
			return err
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// recoveriesSince counts the recoveries started at or after since.
func (r *connectRecoverer) recoveriesSince(since time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.recovers {
		if !at.Before(since) {
			n++
		}
	}
	return n
}

// cutOff isolates a and waits until the monitor reports it Unhealthy and nothing
// it started while the connections were going down is still running. It returns
// the time from which the node is known to be cut off. (A probe that ran while
// Isolate was still closing connections may have found its peer connected.)
func cutOff(t *testing.T, a *testnet.Node, m *healthmon.Monitor, sub <-chan healthmon.HealthReport, rec *connectRecoverer) time.Time {
	t.Helper()
	a.Isolate()
	waitStatus(t, sub, healthmon.Unhealthy)
	waitUntil(t, "the node to be cut off and the recoverer idle", func() bool {
		return rec.idle() && m.CheckHealth(context.Background()).Observed == healthmon.Unhealthy
	})
	return time.Now()
}

// dhtNetwork starts n connected kad-dht server nodes on 127.0.0.1 and waits until
// every node has at least minPeers connected routing-table peers.
func dhtNetwork(t *testing.T, n, minPeers int) []*testnet.Node {
	t.Helper()
	nodes := testnet.NewNetwork(t, n, testnet.WithDHT(dht.ModeServer))
	testnet.ConnectAll(t, nodes...)
	for _, nd := range nodes {
		waitUntil(t, "routing tables to fill", func() bool { return liveTablePeers(nd) >= minPeers })
	}
	return nodes
}

// liveTablePeers counts nd's routing-table peers it is connected to, as the
// monitor does.
func liveTablePeers(nd *testnet.Node) int { return testnet.LiveTablePeers(nd.Host(), nd.DHT()) }

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, realWait, what, cond)
}

// waitStatus waits for a report with the given status on sub.
func waitStatus(t *testing.T, sub <-chan healthmon.HealthReport, want healthmon.Status) healthmon.HealthReport {
	t.Helper()
	timeout := time.After(realWait)
	for {
		select {
		case r, ok := <-sub:
			if !ok {
				t.Fatalf("subscription closed waiting for %v", want)
			}
			if r.Status == want {
				return r
			}
		case <-timeout:
			t.Fatalf("timed out after %v waiting for status %v", realWait, want)
		}
	}
}

func otherInfos(nodes []*testnet.Node) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, n := range nodes {
		out = append(out, n.AddrInfo())
	}
	return out
}

func TestRealNetworkHealthy(t *testing.T) {
	nodes := dhtNetwork(t, 6, 4)
	a := nodes[0]
	m, err := healthmon.New(a.Host(), bootstrap.DHT(a.DHT()), healthmon.WithNetWatch(false))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	rep := waitStatus(t, m.Subscribe(), healthmon.Healthy)
	if !rep.IsHealthy || rep.RoutingTableSize < 4 || rep.TablePeersConnected < 4 || rep.ConnectedPeers < 5 ||
		rep.MinPeersThreshold != healthmon.DefaultMinPeers {
		t.Fatalf("report %+v", rep)
	}
	if rep := m.CheckHealth(context.Background()); !rep.IsHealthy || rep.Observed != healthmon.Healthy {
		t.Fatalf("CheckHealth: %+v", rep)
	}
}

// TestRealNetworkRecoversAfterIsolation: a node cut off from every peer becomes
// Unhealthy, and once the network is back it recovers by itself at the first probe
// after that, i.e. within one probe interval.
func TestRealNetworkRecoversAfterIsolation(t *testing.T) {
	const probeInterval = 2 * time.Second
	nodes := dhtNetwork(t, 6, 4)
	a := nodes[0]
	rec := &connectRecoverer{h: a.Host(), d: a.DHT(), peers: otherInfos(nodes[1:4])}
	tr := &recordingTracer{}
	m, err := healthmon.New(a.Host(), bootstrap.DHT(a.DHT()), healthmon.WithNetWatch(false),
		healthmon.WithRecoverer(rec), healthmon.WithProbeInterval(probeInterval, probeInterval), healthmon.WithMetricsTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sub := m.Subscribe()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, sub, healthmon.Healthy)

	isolated := cutOff(t, a, m, sub, rec)
	waitUntil(t, "three probes while cut off", func() bool { return len(rec.probesSince(isolated)) >= 3 })
	back := time.Now()
	a.Rejoin()
	rep := waitStatus(t, sub, healthmon.Healthy)
	t.Logf("healthy %v after the network came back (probe interval %v, hysteresis %v): %+v",
		rep.Timestamp.Sub(back).Round(time.Millisecond), probeInterval, healthmon.DefaultHealthyFor, rep)

	var during, after []probeCall
	for _, p := range rec.probesSince(isolated) {
		if p.at.Before(back) {
			during = append(during, p)
		} else {
			after = append(after, p)
		}
	}
	for _, p := range during {
		if p.ok {
			t.Errorf("a probe succeeded while cut off: %+v", p)
		}
	}
	if len(after) != 1 || !after[0].ok {
		t.Errorf("probes after the network came back: %+v; want exactly one, successful", after)
	}
	if got := tr.recoveryTriggers(isolated); len(got) != 1 || got[0] != healthmon.TriggerProbe {
		t.Errorf("recovery triggers %v, want [probe]", got)
	}
	if rep.TablePeersConnected < 4 {
		t.Errorf("report %+v", rep)
	}
}

// TestRealNetworkInboundConnectionRecoversAtOnce: with a probe interval far longer
// than the test, an inbound connection while Unhealthy is what brings the node
// back: one recovery, triggered by the connection, and no probe.
func TestRealNetworkInboundConnectionRecoversAtOnce(t *testing.T) {
	nodes := dhtNetwork(t, 6, 4)
	a := nodes[0]
	rec := &connectRecoverer{h: a.Host(), d: a.DHT(), peers: otherInfos(nodes[1:4])}
	tr := &recordingTracer{}
	m, err := healthmon.New(a.Host(), bootstrap.DHT(a.DHT()), healthmon.WithNetWatch(false),
		healthmon.WithRecoverer(rec), healthmon.WithProbeInterval(time.Hour, time.Hour),
		healthmon.WithRecoverBackoff(time.Second, time.Second), healthmon.WithMetricsTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sub := m.Subscribe()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, sub, healthmon.Healthy)

	isolated := cutOff(t, a, m, sub, rec)
	a.Rejoin()
	back := time.Now()
	// Inbound for a, from a peer its recoverer does not know. A dial nodes[5] started
	// while a was cut off may still be failing; the swarm would join it, so retry.
	waitUntil(t, "nodes[5] to connect to a", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := nodes[5].Host().Connect(network.WithForceDirectDial(ctx, "test"), a.AddrInfo())
		if err != nil {
			t.Logf("connect nodes[5] -> a: %v", err)
		}
		return err == nil
	})
	rep := waitStatus(t, sub, healthmon.Healthy)
	rec.mu.Lock()
	started := rec.recovers[len(rec.recovers)-1]
	rec.mu.Unlock()
	t.Logf("recovery started %v and Healthy reported %v (hysteresis: minDwell %v after going Unhealthy) after the network came back: %+v",
		started.Sub(back).Round(time.Millisecond), rep.Timestamp.Sub(back).Round(time.Millisecond), healthmon.DefaultMinDwell, rep)

	if p := rec.probesSince(isolated); len(p) != 0 {
		t.Errorf("probes %+v after the node was cut off; want none (interval 1 h)", p)
	}
	if got := tr.recoveryTriggers(isolated); len(got) != 1 || got[0] != healthmon.TriggerConnection {
		t.Errorf("recovery triggers %v, want [connection]", got)
	}
}

// TestLostSignalsAreNoticedAtOnce: a network change that may have cut the node
// off is checked at once, not after the muxers' ~30 s keep-alive: after a link
// went down, routing-table peers that do not answer a ping within a second
// (here: peers whose ping handler holds the stream and never answers) are
// disconnected while those that answer are kept; after an address was removed,
// the connections on it are closed. Either way the monitor reports the loss
// at once.
func TestLostSignalsAreNoticedAtOnce(t *testing.T) {
	nodes := dhtNetwork(t, 6, 4)
	a := nodes[0]
	for _, nd := range nodes[1:3] { // two peers stop answering pings
		nd.Host().SetStreamHandler(ping.ID, func(s network.Stream) {
			<-t.Context().Done()
			_ = s.Reset()
		})
	}
	netCh := make(chan netwatch.Change)
	m, err := healthmon.New(a.Host(), bootstrap.DHT(a.DHT()), healthmon.WithNetChanges(netCh),
		healthmon.WithHysteresis(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sub := m.Subscribe()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, sub, healthmon.Healthy)
	if live := liveTablePeers(a); live != 5 {
		t.Fatalf("%d table peers connected, want 5", live)
	}

	netCh <- netwatch.Change{Kind: netwatch.LinkDown, Link: "resilience-test-nonexistent"}
	waitUntil(t, "the silent peers to be disconnected", func() bool {
		return a.Host().Network().Connectedness(nodes[1].ID()) != network.Connected &&
			a.Host().Network().Connectedness(nodes[2].ID()) != network.Connected
	})
	if live := liveTablePeers(a); live != 3 {
		t.Errorf("%d table peers connected after the ping check, want the 3 that answer", live)
	}
	rep := waitStatus(t, sub, healthmon.Degraded)
	t.Logf("after link down: %+v", rep)

	netCh <- netwatch.Change{Kind: netwatch.AddrRemoved, Addr: netip.MustParsePrefix("127.0.0.1/8")}
	rep = waitStatus(t, sub, healthmon.Unhealthy)
	if len(a.Host().Network().Conns()) != 0 {
		t.Errorf("connections on the removed address still open: %d", len(a.Host().Network().Conns()))
	}
	t.Logf("after address removed: %+v", rep)
}
