package bootstrap

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// waitTimeout bounds every poll; generous because the machine is slow and
// shared.
const waitTimeout = 60 * time.Second

// testProfile is a shortened bootstrap profile that keeps the tests fast:
// 3 attempts, 100 ms initial delay doubling up to 400 ms (a dead peer gives
// up after about 0.3 s instead of ForDHTBootstrap's ~30 s).
func testProfile() resilience.RetryConfig {
	return resilience.RetryConfig{
		MaxAttempts:       3,
		InitialDelay:      100 * time.Millisecond,
		MaxDelay:          400 * time.Millisecond,
		BackoffMultiplier: 2,
		JitterFactor:      0.1,
		ResetOnSuccess:    true,
	}
}

// waitFor polls cond until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, waitTimeout, what, cond)
}

func ctxTimeout(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// dialCounter is a dialer.MetricsTracer that counts dials.
type dialCounter struct{ dials atomic.Int64 }

func (c *dialCounter) DialAttempted(class dialer.ErrorClass) {
	if class != dialer.ClassDialBackoff { // the swarm refused without dialling
		c.dials.Add(1)
	}
}
func (c *dialCounter) ConnectJoined()        {}
func (c *dialCounter) SwarmBackoffCleared()  {}
func (c *dialCounter) ReconnectStarted()     {}
func (c *dialCounter) ReconnectSucceeded()   {}
func (c *dialCounter) ReconnectRoundFailed() {}
func (c *dialCounter) RetryEventDropped()    {}

// dhtNode starts a kad-dht server node on 127.0.0.1.
func dhtNode(t *testing.T) *testnet.Node {
	t.Helper()
	return testnet.NewNode(t, testnet.WithDHT(dht.ModeServer))
}

func dhtNodes(t *testing.T, n int) []*testnet.Node {
	t.Helper()
	return testnet.NewNetwork(t, n, testnet.WithDHT(dht.ModeServer))
}

// stoppedNodes starts n DHT nodes and stops them: their addresses stay
// valid, nothing listens there.
func stoppedNodes(t *testing.T, n int) []*testnet.Node {
	t.Helper()
	nodes := dhtNodes(t, n)
	for _, nd := range nodes {
		nd.Stop()
	}
	return nodes
}

// wrap wraps the node's current host in a dialer.Host. On cleanup the node
// (DHT, host) stops first, then the dialer.Host closes.
func wrap(t *testing.T, n *testnet.Node, opts ...dialer.Option) *dialer.Host {
	t.Helper()
	dh, err := dialer.Wrap(n.Host(), opts...)
	if err != nil {
		t.Fatalf("dialer.Wrap: %v", err)
	}
	t.Cleanup(func() { _ = dh.Close() })
	t.Cleanup(n.Stop)
	return dh
}

// subject is a node under test with its Bootstrapper.
type subject struct {
	node *testnet.Node
	h    *dialer.Host
	b    *Bootstrapper
}

// newSubject starts a kad-dht server node and a Bootstrapper for it, closed
// on cleanup (before the node stops).
func newSubject(t *testing.T, peers []peer.AddrInfo, opts ...Option) *subject {
	t.Helper()
	n := dhtNode(t)
	return newSubjectOn(t, n, peers, opts...)
}

func newSubjectOn(t *testing.T, n *testnet.Node, peers []peer.AddrInfo, opts ...Option) *subject {
	t.Helper()
	h := wrap(t, n)
	b, err := New(h, DHT(n.DHT()), peers, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &subject{node: n, h: h, b: b}
}

func (s *subject) tableSize() int { return s.node.DHT().RoutingTable().Size() }

func infos(nodes ...*testnet.Node) []peer.AddrInfo {
	out := make([]peer.AddrInfo, len(nodes))
	for i, n := range nodes {
		out[i] = n.AddrInfo()
	}
	return out
}

func ids(prs []PeerResult) []peer.ID {
	out := make([]peer.ID, len(prs))
	for i, pr := range prs {
		out[i] = pr.ID
	}
	return out
}

func connected(h *dialer.Host, id peer.ID) bool {
	return h.Network().Connectedness(id) == network.Connected
}

func tracker(h *dialer.Host, id peer.ID) resilience.ConnectionTracker {
	tr, _ := h.Manager().Get(dialer.TrackerID(id))
	return tr
}

// fakeTable is a RoutingTable that never changes, for tests without a DHT.
type fakeTable struct{}

func (fakeTable) RefreshRoutingTable() <-chan error {
	ch := make(chan error, 1)
	ch <- nil
	close(ch)
	return ch
}
func (fakeTable) ListPeers() []peer.ID { return nil }

// connTable is a RoutingTable that holds the host's connected peers, so that
// a test sets the table's size by the connections it lets happen.
type connTable struct{ h *dialer.Host }

func (connTable) RefreshRoutingTable() <-chan error {
	ch := make(chan error, 1)
	ch <- nil
	return ch
}
func (t connTable) ListPeers() []peer.ID { return t.h.Network().Peers() }
