package dialer_test

import (
	"context"
	"crypto/rand"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/goleak"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every poll; generous for a loaded 2-core machine.
const waitTimeout = 60 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, waitTimeout, what, cond)
}

// fastProfile keeps tests quick: 10 attempts, 100ms initial delay, 1s cap.
func fastProfile() resilience.RetryConfig {
	cfg := resilience.DefaultRetryConfig()
	cfg.MaxAttempts = 10
	cfg.InitialDelay = 100 * time.Millisecond
	cfg.MaxDelay = time.Second
	return cfg
}

func profile(attempts uint32, initial, maxDelay time.Duration) resilience.RetryConfig {
	cfg := resilience.DefaultRetryConfig()
	cfg.MaxAttempts, cfg.InitialDelay, cfg.MaxDelay = attempts, initial, maxDelay
	return cfg
}

// countingGater is a testnet.Gater that also counts the swarm's dials per peer:
// InterceptPeerDial runs once per Network.DialPeer that is not satisfied by an
// existing connection, so it counts the real dials a host made.
type countingGater struct {
	testnet.Gater
	mu    sync.Mutex
	dials map[peer.ID]int
}

func (g *countingGater) InterceptPeerDial(p peer.ID) bool {
	g.mu.Lock()
	if g.dials == nil {
		g.dials = make(map[peer.ID]int)
	}
	g.dials[p]++
	g.mu.Unlock()
	return g.Gater.InterceptPeerDial(p)
}

func (g *countingGater) Dials(p peer.ID) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dials[p]
}

// newRawHost starts a plain libp2p host on 127.0.0.1 (TCP only, no relay,
// unlimited resource manager) with g as its gater and opts added.
func newRawHost(t testing.TB, g *countingGater, opts ...libp2p.Option) host.Host {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(append([]libp2p.Option{
		libp2p.Identity(key),
		libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.ConnectionGater(g),
		libp2p.DisableRelay(),
		libp2p.ResourceManager(rm),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newHost wraps a fresh raw host; t.Cleanup closes it.
func newHost(t testing.TB, opts ...dialer.Option) (*dialer.Host, *countingGater) {
	t.Helper()
	g := &countingGater{}
	raw := newRawHost(t, g)
	h, err := dialer.Wrap(raw, opts...)
	if err != nil {
		_ = raw.Close()
		t.Fatalf("Wrap: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h, g
}

func randomID(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func tracker(h *dialer.Host, id peer.ID) resilience.ConnectionTracker {
	t, _ := h.Manager().Get(dialer.TrackerID(id))
	return t
}

func ctxTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// countingTracer counts MetricsTracer events.
type countingTracer struct {
	mu                                   sync.Mutex
	dials                                map[dialer.ErrorClass]int
	joined, cleared, started, ok, failed int
	dropped                              int
}

func (c *countingTracer) DialAttempted(class dialer.ErrorClass) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dials == nil {
		c.dials = make(map[dialer.ErrorClass]int)
	}
	c.dials[class]++
}
func (c *countingTracer) ConnectJoined()        { c.add(&c.joined) }
func (c *countingTracer) SwarmBackoffCleared()  { c.add(&c.cleared) }
func (c *countingTracer) ReconnectStarted()     { c.add(&c.started) }
func (c *countingTracer) ReconnectSucceeded()   { c.add(&c.ok) }
func (c *countingTracer) ReconnectRoundFailed() { c.add(&c.failed) }
func (c *countingTracer) RetryEventDropped()    { c.add(&c.dropped) }

func (c *countingTracer) add(n *int) {
	c.mu.Lock()
	*n++
	c.mu.Unlock()
}

func (c *countingTracer) get(n *int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *n
}

func (c *countingTracer) totalDials() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.dials {
		n += v
	}
	return n
}

func quicAddr(t testing.TB) ma.Multiaddr {
	t.Helper()
	return ma.StringCast("/ip4/127.0.0.1/udp/9/quic-v1")
}

// stallingPeer is a TCP listener on 127.0.0.1 that accepts connections and never
// answers: a libp2p dial to it hangs in the handshake until its ctx ends.
type stallingPeer struct {
	pi       peer.AddrInfo
	accepted chan struct{} // one value per accepted connection
}

// newStallingPeer starts a stallingPeer under a random peer ID; t.Cleanup closes
// the listener and the connections and waits for its goroutine.
func newStallingPeer(t testing.TB) *stallingPeer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr, err := manet.FromNetAddr(l.Addr())
	if err != nil {
		_ = l.Close()
		t.Fatal(err)
	}
	p := &stallingPeer{pi: peer.AddrInfo{ID: randomID(t), Addrs: []ma.Multiaddr{addr}}, accepted: make(chan struct{}, 16)}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			select {
			case p.accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return p
}

// waitAccepted waits until the stalling peer accepted a connection.
func (p *stallingPeer) waitAccepted(t testing.TB) {
	t.Helper()
	select {
	case <-p.accepted:
	case <-time.After(waitTimeout):
		t.Fatal("the dial never reached the stalling peer")
	}
}
