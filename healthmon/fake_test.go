package healthmon_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
)

// fakeNode is a host, a network and a routing table in one, for unit tests in
// testing/synctest bubbles: the table holds tableSize peers, of which the test
// decides how many are connected. Changes are announced on the bus like the swarm
// does (EvtPeerConnectednessChanged). Only EventBus and Network are implemented;
// other host.Host and network.Network methods panic.
type fakeNode struct {
	host.Host
	bus event.Bus
	em  event.Emitter
	net *fakeNet
	tbl []peer.ID
}

type fakeNet struct {
	network.Network
	mu        sync.Mutex
	connected map[peer.ID]bool
}

func newFakeNode(t *testing.T, tableSize int) *fakeNode {
	t.Helper()
	bus := eventbus.NewBus()
	em, err := bus.Emitter(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })
	n := &fakeNode{bus: bus, em: em, net: &fakeNet{connected: map[peer.ID]bool{}}}
	for i := range tableSize {
		n.tbl = append(n.tbl, peer.ID(fmt.Sprintf("table-peer-%d", i)))
	}
	return n
}

func (n *fakeNode) EventBus() event.Bus  { return n.bus }
func (n *fakeNet) Conns() []network.Conn { return nil }

// NewStream fails at once: a ping of a fake peer is a protocol error, not a
// timeout, so the monitor leaves the (fake) connection alone.
func (n *fakeNode) NewStream(context.Context, peer.ID, ...protocol.ID) (network.Stream, error) {
	return nil, errors.New("fake: no streams")
}
func (n *fakeNode) Network() network.Network { return n.net }
func (n *fakeNode) ListPeers() []peer.ID     { return append([]peer.ID(nil), n.tbl...) }

// RefreshRoutingTable makes fakeNode a bootstrap.RoutingTable; the monitor
// never refreshes.
func (n *fakeNode) RefreshRoutingTable() <-chan error {
	ch := make(chan error, 1)
	ch <- nil
	return ch
}
func (n *fakeNet) Connectedness(p peer.ID) network.Connectedness {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.connected[p] {
		return network.Connected
	}
	return network.NotConnected
}

func (n *fakeNet) Peers() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []peer.ID
	for p, c := range n.connected {
		if c {
			out = append(out, p)
		}
	}
	return out
}

// setConnected connects (or disconnects) p and announces it on the bus.
func (n *fakeNode) setConnected(p peer.ID, on bool) {
	n.net.mu.Lock()
	changed := n.net.connected[p] != on
	n.net.connected[p] = on
	n.net.mu.Unlock()
	if !changed {
		return
	}
	c := network.NotConnected
	if on {
		c = network.Connected
	}
	_ = n.em.Emit(event.EvtPeerConnectednessChanged{Peer: p, Connectedness: c})
}

// connectLagging connects p at once and announces it after lag, as the swarm's
// event goroutine may.
func (n *fakeNode) connectLagging(p peer.ID, lag time.Duration) {
	n.net.mu.Lock()
	n.net.connected[p] = true
	n.net.mu.Unlock()
	go func() {
		time.Sleep(lag)
		_ = n.em.Emit(event.EvtPeerConnectednessChanged{Peer: p, Connectedness: network.Connected})
	}()
}

// setLive connects the first k table peers and disconnects the others.
func (n *fakeNode) setLive(k int) {
	for i, p := range n.tbl {
		n.setConnected(p, i < k)
	}
}

// fakeRecoverer records calls. probeOK decides each probe; onRecover runs in
// Recover (nil: nothing), then recoverCtx, whose error Recover returns (nil:
// none). All fields are guarded by mu.
type fakeRecoverer struct {
	mu          sync.Mutex
	probeOK     func() bool
	onRecover   func()
	recoverCtx  func(ctx context.Context) error
	probes      []probeCall
	recovers    []time.Time
	recoverEnds []time.Time
	inflight    int
	maxInflt    int
}

type probeCall struct {
	at  time.Time
	ok  bool
	err error
}

// probeLog records the probes of a test Recoverer. Safe for concurrent use.
type probeLog struct {
	mu     sync.Mutex
	probes []probeCall
}

func (l *probeLog) record(at time.Time, err error) {
	l.mu.Lock()
	l.probes = append(l.probes, probeCall{at: at, ok: err == nil, err: err})
	l.mu.Unlock()
}

// probesSince returns the probes started at or after since.
func (l *probeLog) probesSince(since time.Time) []probeCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []probeCall
	for _, p := range l.probes {
		if !p.at.Before(since) {
			out = append(out, p)
		}
	}
	return out
}

var errUnreachable = errors.New("fake: network unreachable")

func (r *fakeRecoverer) enter() func() {
	r.mu.Lock()
	r.inflight++
	r.maxInflt = max(r.maxInflt, r.inflight)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.inflight--
		r.mu.Unlock()
	}
}

func (r *fakeRecoverer) Probe(ctx context.Context) error {
	defer r.enter()()
	r.mu.Lock()
	ok := r.probeOK != nil && r.probeOK()
	r.probes = append(r.probes, probeCall{at: time.Now(), ok: ok})
	r.mu.Unlock()
	if !ok {
		return errUnreachable
	}
	return nil
}

func (r *fakeRecoverer) Recover(ctx context.Context) error {
	defer r.enter()()
	r.mu.Lock()
	r.recovers = append(r.recovers, time.Now())
	f, fctx := r.onRecover, r.recoverCtx
	r.mu.Unlock()
	if f != nil {
		f()
	}
	var err error
	if fctx != nil {
		err = fctx(ctx)
	}
	r.mu.Lock()
	r.recoverEnds = append(r.recoverEnds, time.Now())
	r.mu.Unlock()
	return err
}

func (r *fakeRecoverer) setProbeOK(f func() bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.probeOK = f
}

func (r *fakeRecoverer) probeTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Time
	for _, p := range r.probes {
		out = append(out, p.at)
	}
	return out
}

func (r *fakeRecoverer) recoverTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.recovers...)
}

// recoverEndTimes returns when the Recover calls returned.
func (r *fakeRecoverer) recoverEndTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.recoverEnds...)
}

// probeResults returns the result of each probe.
func (r *fakeRecoverer) probeResults() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []bool
	for _, p := range r.probes {
		out = append(out, p.ok)
	}
	return out
}

// recordingTracer records every tracer call with its (virtual) time.
type recordingTracer struct {
	mu       sync.Mutex
	checks   int
	changes  []statusChange
	triggers []triggerAt
	probes   []bool
	recovers []bool // RecoveryCompleted results
}

type triggerAt struct {
	at time.Time
	tr healthmon.Trigger
}

type statusChange struct {
	at       time.Time
	from, to healthmon.Status
}

func (r *recordingTracer) CheckCompleted(healthmon.Status, int) {
	r.mu.Lock()
	r.checks++
	r.mu.Unlock()
}

func (r *recordingTracer) StatusChanged(from, to healthmon.Status) {
	r.mu.Lock()
	r.changes = append(r.changes, statusChange{at: time.Now(), from: from, to: to})
	r.mu.Unlock()
}

func (r *recordingTracer) ProbeCompleted(ok bool) {
	r.mu.Lock()
	r.probes = append(r.probes, ok)
	r.mu.Unlock()
}

func (r *recordingTracer) RecoveryStarted(tr healthmon.Trigger) {
	r.mu.Lock()
	r.triggers = append(r.triggers, triggerAt{at: time.Now(), tr: tr})
	r.mu.Unlock()
}

func (r *recordingTracer) RecoveryCompleted(ok bool) {
	r.mu.Lock()
	r.recovers = append(r.recovers, ok)
	r.mu.Unlock()
}

func (r *recordingTracer) recoveryResults() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.recovers...)
}

func (r *recordingTracer) statusChanges() []statusChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]statusChange(nil), r.changes...)
}

// recoveryTriggers returns the triggers of the recoveries started after since.
func (r *recordingTracer) recoveryTriggers(since time.Time) []healthmon.Trigger {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []healthmon.Trigger
	for _, t := range r.triggers {
		if !t.at.Before(since) {
			out = append(out, t.tr)
		}
	}
	return out
}

func (r *recordingTracer) checkCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checks
}

// startMonitor builds and starts a monitor of n (kernel watching off unless opts
// say otherwise) and closes it in t.Cleanup.
func startMonitor(t *testing.T, n *fakeNode, opts ...healthmon.Option) *healthmon.Monitor {
	t.Helper()
	m, err := healthmon.New(n, n, append([]healthmon.Option{healthmon.WithNetWatch(false)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return m
}
