package dialer_test

import (
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// TestStalledConsumersDoNotDelayConnections: an OnRetry callback that blocks and
// an EvtConnectRetry subscriber that never reads must delay neither retry rounds
// nor new connections, inbound or outbound, nor the notifiee's bookkeeping.
func TestStalledConsumersDoNotDelayConnections(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	stalled := make(chan struct{})
	tracer := &countingTracer{}
	h, _ := newHost(t, dialer.WithMetricsTracer(tracer), dialer.WithOnRetry(func(peer.ID, uint32, error, time.Duration) {
		once.Do(func() { close(stalled) })
		<-release
	}))
	sub, err := h.EventBus().Subscribe(new(dialer.EvtConnectRetry), eventbus.BufSize(1))
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: unblock the consumers before h.Close.
	t.Cleanup(func() { _ = sub.Close() })
	t.Cleanup(func() { close(release) })

	// A down peer retried every few milliseconds floods the consumers.
	down := testnet.NewNode(t)
	down.Stop()
	if err := h.SetProfile(down.ID(), profile(0, time.Millisecond, 5*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	downDone := make(chan error, 1)
	go func() { downDone <- h.Connect(ctxTimeout(t), down.AddrInfo()) }()
	<-stalled
	waitFor(t, "retry notifications to be dropped (consumers stalled, queue full)", func() bool {
		return tracer.get(&tracer.dropped) > 0
	})

	// Outbound connections through the Host.
	nodes := testnet.NewNetwork(t, 8)
	for _, n := range nodes {
		if err := h.Connect(ctxTimeout(t), n.AddrInfo()); err != nil {
			t.Fatalf("Connect while consumers are stalled: %v", err)
		}
	}
	// Inbound connections, seen by the notifiee.
	in := testnet.NewNetwork(t, 4)
	for _, n := range in {
		if err := n.Host().Connect(ctxTimeout(t), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
			t.Fatalf("inbound connect while consumers are stalled: %v", err)
		}
	}
	for _, n := range append(nodes, in...) {
		waitFor(t, "the tracker to show the connection", func() bool {
			return h.Network().Connectedness(n.ID()) == network.Connected && tracker(h, n.ID()).State == resilience.Connected
		})
	}
	// The flooding round itself goes on: the peer comes back and is connected.
	down.Start()
	if err := <-downDone; err != nil {
		t.Fatalf("round with stalled consumers: %v", err)
	}
}
