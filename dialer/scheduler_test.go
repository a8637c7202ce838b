package dialer_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	xrate "github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// startRound starts a round for a stopped node with an hour between attempts
// and waits until it waits out its backoff; the returned func cancels it and
// returns its error.
func startRound(t *testing.T, h *dialer.Host, n *testnet.Node) func() error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := profile(5, time.Hour, time.Hour)
	cfg.ResetOnSuccess = false // keep the attempts countable after a success
	go func() { done <- h.ConnectWithConfig(ctx, n.AddrInfo(), cfg) }()
	waitFor(t, "the round to wait for its second attempt", func() bool {
		return tracker(h, n.ID()).State == resilience.Retrying
	})
	stopped := false
	var err error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// TestImmediatelyWakesAWaitingRound: a request with dialer.Immediately (what
// bootstrap's Recover sends) that joins a round waiting out an hour's backoff
// makes it dial at once — on the old code it waited for the round's timer.
func TestImmediatelyWakesAWaitingRound(t *testing.T) {
	h, _ := newHost(t)
	n := testnet.NewNode(t)
	n.Stop()
	stop := startRound(t, h, n)
	n.Start() // reachable now; the round would dial again in an hour

	dials, err := h.Dial(ctxTimeout(t), n.AddrInfo(), dialer.Immediately())
	if err != nil {
		t.Fatalf("Dial(Immediately) joining a waiting round: %v", err)
	}
	if dials != 1 {
		t.Errorf("the joining call saw %d dials, want 1 (the woken attempt)", dials)
	}
	if err := stop(); err != nil {
		t.Errorf("the round itself: %v, want nil (it connected)", err)
	}
	if tr := tracker(h, n.ID()); tr.State != resilience.Connected || tr.AttemptCount != 2 {
		t.Errorf("tracker %v after %d attempts, want connected after 2", tr.State, tr.AttemptCount)
	}
}

// TestWakeRoundsAndInboundConnections: WakeRounds wakes every waiting round,
// and an inbound connection (evidence the network is back) does it too.
func TestWakeRoundsAndInboundConnections(t *testing.T) {
	h, g := newHost(t)
	n := testnet.NewNode(t)
	n.Stop()
	startRound(t, h, n)
	if got := h.WakeRounds(); got != 1 {
		t.Fatalf("WakeRounds woke %d rounds, want 1", got)
	}
	waitFor(t, "the woken round's second dial", func() bool { return g.Dials(n.ID()) >= 2 })
	waitFor(t, "the round to wait again", func() bool { return tracker(h, n.ID()).State == resilience.Retrying })

	in := testnet.NewNode(t)
	if err := in.Host().Connect(ctxTimeout(t), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the inbound connection to wake the round", func() bool { return g.Dials(n.ID()) >= 3 })
}

// TestProbeOfAWaitingRoundSharesItsDial: a probe of a peer whose round waits
// out its backoff wakes the round and is answered by the round's dial — one
// dial, not two beside each other — and its tracker counts every dial once.
func TestProbeOfAWaitingRoundSharesItsDial(t *testing.T) {
	h, g := newHost(t)
	n := testnet.NewNode(t)
	n.Stop()
	startRound(t, h, n)
	if err := h.ConnectOnce(ctxTimeout(t), n.AddrInfo()); err == nil {
		t.Fatal("probe of a stopped peer succeeded")
	}
	if got := g.Dials(n.ID()); got != 2 {
		t.Errorf("%d dials after the round's first attempt and a probe, want 2", got)
	}
	if tr := tracker(h, n.ID()); tr.State != resilience.Retrying || tr.AttemptCount != 2 || tr.ConsecutiveFailures != 2 {
		t.Errorf("tracker %v with %d attempts, %d failures; want retrying (the round goes on) with 2 and 2",
			tr.State, tr.AttemptCount, tr.ConsecutiveFailures)
	}
}

// TestProbeFailuresKeepTheManagerBounded floods a manager (cap 10, TTL 1 s)
// with failed probes to distinct peers: a failed probe schedules nothing, so
// its tracker is Idle, expires and can be evicted. On the old code each one
// stayed Retrying (active) for ever and the manager held all of them.
func TestProbeFailuresKeepTheManagerBounded(t *testing.T) {
	mgr, err := resilience.NewConnectionManager(resilience.WithMaxTrackers(10), resilience.WithIdleTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newHost(t, dialer.WithManager(mgr))
	addr := closedAddr(t)
	for i := range 40 {
		pi := peer.AddrInfo{ID: randomID(t), Addrs: []ma.Multiaddr{addr}}
		if err := h.ConnectOnce(ctxTimeout(t), pi); err == nil {
			t.Fatalf("probe %d to a closed port succeeded", i)
		}
	}
	st := mgr.Stats()
	if mgr.Len() > 10 || st.Retrying != 0 || st.Connecting != 0 {
		t.Fatalf("after 40 failed probes: %d trackers (cap 10), %d retrying, %d connecting", mgr.Len(), st.Retrying, st.Connecting)
	}
	waitFor(t, "the idle trackers to expire", func() bool {
		mgr.Sweep()
		return mgr.Len() == 0
	})
}

// TestCanceledRoundLeavesAProbesAttemptAlone: a round whose last caller leaves
// while it waits stops without an attempt of its own in flight; it must not
// end the attempt of a probe dialling the same peer through the Host.
func TestCanceledRoundLeavesAProbesAttemptAlone(t *testing.T) {
	h, _ := newHost(t)
	stall := newStallingPeer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	probeDone := make(chan error, 1)
	go func() { probeDone <- h.ConnectOnce(network.WithDialPeerTimeout(ctx, time.Hour), stall.pi) }()
	stall.waitAccepted(t)
	// A round joins the probe's worker and leaves again.
	rctx, rcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer rcancel()
	if err := h.Connect(rctx, stall.pi); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("round whose ctx ended = %v, want DeadlineExceeded", err)
	}
	if tr := tracker(h, stall.pi.ID); tr.State != resilience.Connecting || tr.AttemptCount != 1 {
		t.Fatalf("while the probe dials: tracker %v with %d attempts, want connecting with 1", tr.State, tr.AttemptCount)
	}
	cancel()
	if err := <-probeDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("probe = %v, want context.Canceled", err)
	}
	// The caller returns at once; the worker records the cut-short attempt.
	waitFor(t, "the canceled probe's attempt to be recorded", func() bool {
		return tracker(h, stall.pi.ID).State != resilience.Connecting
	})
	if tr := tracker(h, stall.pi.ID); tr.State != resilience.Idle || tr.AttemptCount != 1 || tr.ConsecutiveFailures != 0 {
		t.Errorf("after the probe was canceled: tracker %v with %d attempts, %d failures; want idle, 1, 0",
			tr.State, tr.AttemptCount, tr.ConsecutiveFailures)
	}
}

// TestRateLimitRefusalIsNotAFailure: the host's resource manager refuses
// connections past its rate (here one per 250 ms, burst 1, loopback not
// exempt); the Host waits and dials again instead of spending the peers'
// attempts: with a one-attempt profile every peer still connects.
func TestRateLimitRefusalIsNotAFailure(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits),
		rcmgr.WithConnRateLimiters(&xrate.Limiter{GlobalLimit: xrate.Limit{RPS: 4, Burst: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := libp2p.New(libp2p.Identity(key), libp2p.Transport(tcp.NewTCPTransport, tcp.DisableReuseport()),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.ResourceManager(rm))
	if err != nil {
		t.Fatal(err)
	}
	tracer := &countingTracer{}
	h, err := dialer.Wrap(raw, dialer.WithIPDialLimit(4, 1), dialer.WithMetricsTracer(tracer))
	if err != nil {
		_ = raw.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })

	nodes := testnet.NewNetwork(t, 3)
	errs := make(chan error, len(nodes))
	once := profile(1, time.Second, time.Second)
	once.ResetOnSuccess = false // keep the attempts countable after a success
	for _, n := range nodes {
		go func() { errs <- h.ConnectWithConfig(ctxTimeout(t), n.AddrInfo(), once) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Errorf("Connect with one attempt under the rate limit: %v", err)
		}
	}
	for _, n := range nodes {
		if tr := tracker(h, n.ID()); tr.State != resilience.Connected || tr.AttemptCount != 1 {
			t.Errorf("tracker %v after %d attempts, want connected after 1", tr.State, tr.AttemptCount)
		}
	}
	tracer.mu.Lock()
	refused := tracer.dials[dialer.ClassRateLimited]
	tracer.mu.Unlock()
	if refused == 0 {
		t.Error("no dial was refused by the rate limit: the test proves nothing")
	}
}

// closedAddr is a 127.0.0.1 TCP address nothing listens on.
func closedAddr(t *testing.T) ma.Multiaddr {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
}
