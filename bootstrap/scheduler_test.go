package bootstrap

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// staleTable is a routing table holding peers that are not connected: its
// size says MinPeers, the monitor's measure (connected table peers) says 0.
type staleTable struct {
	fakeTable
	peers []peer.ID
}

func (s staleTable) ListPeers() []peer.ID { return s.peers }

// TestRecoverEndsOnConnectedTablePeers: Recover ends the remaining rounds once
// MinPeers routing-table peers are connected — not when the table's size
// reaches MinPeers with stale entries (on the old code it stopped at once,
// and the node stayed degraded).
func TestRecoverEndsOnConnectedTablePeers(t *testing.T) {
	live := dhtNode(t)
	down := stoppedNodes(t, 1)[0]
	n := testnet.NewNode(t)
	h := wrap(t, n)
	stale := staleTable{peers: []peer.ID{testnet.NewNode(t).ID(), testnet.NewNode(t).ID()}}
	slow := resilience.RetryConfig{MaxAttempts: 5, InitialDelay: time.Hour, MaxDelay: time.Hour, BackoffMultiplier: 2}
	b, err := New(h, stale, infos(live, down), WithRetryConfig(slow), WithMinPeers(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.Recover(ctx); err != nil {
		t.Fatalf("Recover: %v (one peer was reached)", err)
	}
	if ctx.Err() == nil {
		t.Fatal("Recover returned before its ctx ended although no routing-table peer is connected: " +
			"it ended on the table's size, not on connected table peers")
	}
	if !connected(h, live.ID()) {
		t.Error("the live bootstrap peer is not connected")
	}
}

// TestRecoverDialsAtOnce: a bootstrap peer whose round waits out an hour's
// backoff is dialled at once by Recover, which joins the round and wakes it.
func TestRecoverDialsAtOnce(t *testing.T) {
	boot := stoppedNodes(t, 1)[0]
	n := testnet.NewNode(t)
	h := wrap(t, n)
	slow := resilience.RetryConfig{MaxAttempts: 5, InitialDelay: time.Hour, MaxDelay: time.Hour, BackoffMultiplier: 2}
	b, err := New(h, connTable{h}, infos(boot), WithRetryConfig(slow), WithMinPeers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })

	// A round of the peer (a Connect through the dialer) waits for its
	// second attempt, an hour away.
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	go func() { _ = h.ConnectWithConfig(rctx, boot.AddrInfo(), slow) }()
	waitFor(t, "the round to wait out its backoff", func() bool {
		return tracker(h, boot.ID()).State == resilience.Retrying
	})
	boot.Start()

	done := make(chan error, 1)
	go func() { done <- b.Recover(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Recover: %v", err)
		}
	case <-time.After(waitTimeout): // far below the round's hour
		t.Fatal("Recover did not dial the waiting peer at once")
	}
	if !connected(h, boot.ID()) || !h.ConnManager().IsProtected(boot.ID(), ProtectTag) {
		t.Error("bootstrap peer not connected and protected after Recover")
	}
}

// TestProbeSkipsConnectedPeers: evidence that the network works is a new
// connection. A backup peer that is still connected (and in the table) is never
// probed: the probes go to the unreachable bootstrap peer and fail, so a
// monitor never takes them for the network's return.
func TestProbeSkipsConnectedPeers(t *testing.T) {
	boot := stoppedNodes(t, 1)[0]
	backupNode := dhtNode(t)
	path := filepath.Join(t.TempDir(), "backup.json")
	if err := saveBackup(path, infos(backupNode)); err != nil {
		t.Fatal(err)
	}
	s := newSubject(t, infos(boot), WithBackupFile(path))
	testnet.Connect(t, s.node, backupNode)
	waitFor(t, "the backup peer in the routing table", func() bool { return s.tableSize() == 1 })
	for i := range 4 {
		err := s.b.Probe(ctxTimeout(t))
		if err == nil || !strings.Contains(err.Error(), boot.ID().String()) {
			t.Fatalf("probe %d = %v, want the stopped bootstrap peer's dial error (never the connected backup peer)", i, err)
		}
	}
	if tr := tracker(s.h, backupNode.ID()); tr.AttemptCount != 0 {
		t.Errorf("the connected backup peer was dialled %d times by probes", tr.AttemptCount)
	}
}

// TestProbeRepairsConnectedPeerNotInTable: a bootstrap peer whose connection
// never made it into the routing table (here kad-dht's table filter refuses it
// once, as when identify fails or the DHT protocol was not confirmed) is closed
// and redialled by a probe once it has been connected for 2 s; the new
// connection's identify puts it in the table.
func TestProbeRepairsConnectedPeerNotInTable(t *testing.T) {
	boot := dhtNode(t)
	var refused atomic.Bool
	n := testnet.NewNode(t, testnet.WithDHT(dht.ModeServer), testnet.WithDHTOptions(
		dht.RoutingTableFilter(func(_ any, p peer.ID) bool {
			return p != boot.ID() || !refused.CompareAndSwap(false, true)
		})))
	s := newSubjectOn(t, n, infos(boot))
	testnet.Connect(t, n, boot)
	waitFor(t, "the table filter to refuse the bootstrap peer once", refused.Load)
	if s.tableSize() != 0 {
		t.Fatalf("table holds %d peers, want 0", s.tableSize())
	}
	before := s.h.Network().ConnsToPeer(boot.ID())
	if err := s.b.Probe(ctxTimeout(t)); !errors.Is(err, ErrAllConnected) {
		t.Fatalf("probe right after connecting = %v, want ErrAllConnected (not yet 2 s)", err)
	}
	time.Sleep(tableJoinWait + 100*time.Millisecond)
	if err := s.b.Probe(ctxTimeout(t)); err != nil {
		t.Fatalf("repairing probe: %v", err)
	}
	waitFor(t, "the redialled bootstrap peer in the routing table", func() bool { return s.tableSize() == 1 })
	after := s.h.Network().ConnsToPeer(boot.ID())
	if len(before) == 0 || len(after) == 0 || after[0] == before[0] {
		t.Errorf("connections before %v, after %v: want a new one", before, after)
	}
}
