package bootstrap

import (
	"context"
	"testing"
	"time"

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

func (s staleTable) RoutingTableSize() int        { return len(s.peers) }
func (s staleTable) RoutingTablePeers() []peer.ID { return s.peers }

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
