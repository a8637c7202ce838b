package healthmon_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/healthmon"
)

// deadlockWait bounds waits for calls that return at once unless they deadlock.
const deadlockWait = 30 * time.Second

// lockedTable is a routing table locked like kbucket's: ListPeers takes a read
// lock, and the table holds its write lock while it calls its PeerAdded and
// PeerRemoved callbacks (TryAddPeer, RemovePeer).
type lockedTable struct {
	n       *fakeNode
	mu      sync.RWMutex
	armed   atomic.Bool
	entered chan struct{} // closed by the first ListPeers call after armed is set
}

func (t *lockedTable) RefreshRoutingTable() <-chan error { return t.n.RefreshRoutingTable() }

func (t *lockedTable) ListPeers() []peer.ID {
	if t.armed.CompareAndSwap(true, false) {
		close(t.entered)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n.ListPeers()
}

// TestTableCallbackMayReadMonitor: a routing-table callback, running under the
// table's write lock, may call IsHealthy, LastReport, Subscribe and Unsubscribe
// while a check waits to read that table.
func TestTableCallbackMayReadMonitor(t *testing.T) {
	n := newFakeNode(t, 10)
	n.setLive(10)
	tbl := &lockedTable{n: n, entered: make(chan struct{})}
	m, err := healthmon.New(n, tbl, healthmon.WithNetWatch(false))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.CheckHealth(context.Background())

	tbl.mu.Lock() // the table calls PeerAdded with its write lock held
	tbl.armed.Store(true)
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		m.CheckHealth(context.Background())
	}()
	<-tbl.entered // the check is reading the table and waits for its lock

	callback := make(chan struct{})
	go func() { // PeerAdded -> the user's code
		defer close(callback)
		_ = m.IsHealthy()
		_ = m.LastReport()
		m.Unsubscribe(m.Subscribe())
	}()
	var deadlocked bool
	select {
	case <-callback:
	case <-time.After(deadlockWait):
		deadlocked = true
	}
	tbl.mu.Unlock()
	<-checked
	<-callback
	if deadlocked {
		t.Fatalf("a table callback calling the monitor did not return within %v: the check holds the monitor's lock while it reads the table", deadlockWait)
	}
}

// blockingTracer is a recordingTracer whose next StatusChanged call, once armed,
// waits for release before it records.
type blockingTracer struct {
	recordingTracer
	armed   atomic.Bool
	blocked chan struct{}
	release chan struct{}
}

func (b *blockingTracer) StatusChanged(from, to healthmon.Status) {
	if b.armed.CompareAndSwap(true, false) {
		close(b.blocked)
		<-b.release
	}
	b.recordingTracer.StatusChanged(from, to)
}

// TestStatusTracerFollowsChecks: concurrent checks (CheckHealth, the loop) report
// status changes to the tracer in the order of the reported statuses, so the
// status gauge ends on the reported status.
func TestStatusTracerFollowsChecks(t *testing.T) {
	n := newFakeNode(t, 10)
	n.setLive(10)
	tr := &blockingTracer{blocked: make(chan struct{}), release: make(chan struct{})}
	m, err := healthmon.New(n, n, healthmon.WithNetWatch(false), healthmon.WithHysteresis(0, 0),
		healthmon.WithMetricsTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.CheckHealth(context.Background()) // unknown -> healthy

	tr.armed.Store(true)
	n.setLive(0)
	first := make(chan struct{})
	go func() { // healthy -> unhealthy; its tracer call stalls
		defer close(first)
		m.CheckHealth(context.Background())
	}()
	<-tr.blocked
	n.setLive(10)
	second := make(chan struct{})
	go func() { // unhealthy -> healthy
		defer close(second)
		m.CheckHealth(context.Background())
	}()
	// Give the second check the chance to overtake the first one's tracer call
	// (it does, at once, when checks are not serialized); serialized, it waits.
	select {
	case <-second:
	case <-time.After(2 * time.Second):
	}
	close(tr.release)
	<-first
	<-second

	changes := tr.statusChanges()
	for i := 1; i < len(changes); i++ {
		if changes[i].from != changes[i-1].to {
			t.Errorf("tracer saw %v -> %v after %v -> %v", changes[i].from, changes[i].to, changes[i-1].from, changes[i-1].to)
		}
	}
	if last, want := changes[len(changes)-1].to, m.LastReport().Status; last != want {
		t.Fatalf("tracer's last status %v, reported status %v: the status gauge is stale", last, want)
	}
}
