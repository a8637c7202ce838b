package dialer_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func TestConnectSuccess(t *testing.T) {
	h, gater := newHost(t)
	node := testnet.NewNode(t)
	if err := h.Connect(ctxTimeout(t), node.AddrInfo()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if got := h.Network().Connectedness(node.ID()); got != network.Connected {
		t.Fatalf("connectedness = %v, want Connected", got)
	}
	tr := tracker(h, node.ID())
	if tr.State != resilience.Connected || tr.Config != resilience.ForDHTPeer() {
		t.Fatalf("tracker = %v with config %+v, want Connected with ForDHTPeer", tr.State, tr.Config)
	}
	// Already connected: nil at once, no dial.
	if err := h.Connect(ctxTimeout(t), node.AddrInfo()); err != nil {
		t.Fatalf("second Connect: %v", err)
	}
	if n := gater.Dials(node.ID()); n != 1 {
		t.Fatalf("dials = %d, want 1", n)
	}
}

func TestConnectSucceedsAfterPeerRestarts(t *testing.T) {
	var mu sync.Mutex
	var retries []uint32
	h, gater := newHost(t, dialer.WithOnRetry(func(id peer.ID, attempt uint32, err error, delay time.Duration) {
		mu.Lock()
		retries = append(retries, attempt)
		mu.Unlock()
	}))
	node := testnet.NewNode(t)
	node.Stop()
	if err := h.SetProfile(node.ID(), fastProfile()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Connect(ctxTimeout(t), node.AddrInfo()) }()
	waitFor(t, "two failed attempts", func() bool { return gater.Dials(node.ID()) >= 2 })
	node.Start()
	if err := <-done; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if tr := tracker(h, node.ID()); tr.State != resilience.Connected {
		t.Fatalf("tracker state = %v, want Connected", tr.State)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(retries) < 2 || retries[0] != 1 || retries[1] != 2 {
		t.Fatalf("OnRetry attempts = %v, want 1, 2, ...", retries)
	}
}

func TestConnectPermanentErrorsStopAfterOneAttempt(t *testing.T) {
	h, gater := newHost(t)
	node := testnet.NewNode(t)
	blocked := testnet.NewNode(t)
	gater.Block(blocked.ID())
	for _, tc := range []struct {
		name string
		pi   peer.AddrInfo
		is   func(error) bool
	}{
		{"wrong peer ID at the address", peer.AddrInfo{ID: randomID(t), Addrs: node.Addrs()}, func(err error) bool {
			var m sec.ErrPeerIDMismatch
			return errors.As(err, &m)
		}},
		{"our gater refuses", blocked.AddrInfo(), func(err error) bool {
			return errors.Is(err, swarm.ErrGaterDisallowedConnection)
		}},
		{"no addresses", peer.AddrInfo{ID: randomID(t)}, func(err error) bool {
			return errors.Is(err, swarm.ErrNoAddresses)
		}},
		{"dial to self", peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}, func(err error) bool {
			return errors.Is(err, swarm.ErrDialToSelf)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.SetProfile(tc.pi.ID, fastProfile()); err != nil {
				t.Fatal(err)
			}
			err := h.Connect(ctxTimeout(t), tc.pi)
			if !resilience.IsPermanent(err) || dialer.Classify(err) != dialer.ClassPermanent || !tc.is(err) {
				t.Fatalf("Connect = %v, want a permanent error of this kind", err)
			}
			if errors.Is(err, resilience.ErrExhausted) {
				t.Fatalf("Connect = %v: permanent error reported as exhausted", err)
			}
			tr := tracker(h, tc.pi.ID)
			if tr.State != resilience.Failed || tr.AttemptCount != 1 {
				t.Fatalf("tracker = %v after %d attempts, want Failed after 1", tr.State, tr.AttemptCount)
			}
			if tc.pi.ID != h.ID() { // the swarm rejects dials to self before the gater
				if n := gater.Dials(tc.pi.ID); n != 1 {
					t.Fatalf("dials = %d, want 1", n)
				}
			}
		})
	}
}

func TestConnectCanceledDuringBackoff(t *testing.T) {
	h, gater := newHost(t)
	node := testnet.NewNode(t)
	node.Stop()
	if err := h.SetProfile(node.ID(), profile(3, time.Hour, time.Hour)); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("user gave up")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Connect(ctx, node.AddrInfo()) }()
	waitFor(t, "the first attempt to fail", func() bool { return tracker(h, node.ID()).State == resilience.Retrying })
	cancel(cause)
	select {
	case err := <-done:
		if !errors.Is(err, cause) {
			t.Fatalf("Connect = %v, want the cancel cause", err)
		}
		if !errors.Is(err, tracker(h, node.ID()).LastError) {
			t.Fatalf("Connect = %v, want it to carry the last dial error too", err)
		}
	case <-time.After(waitTimeout): // far below the 1h backoff
		t.Fatal("Connect did not return after its ctx was cancelled")
	}
	// The round nobody waits for stops and does not leave the tracker Retrying.
	waitFor(t, "the abandoned round to end", func() bool { return tracker(h, node.ID()).State == resilience.Idle })
	if n := gater.Dials(node.ID()); n != 1 {
		t.Fatalf("dials = %d, want 1", n)
	}
}

func TestConcurrentConnectsShareOneRound(t *testing.T) {
	const callers = 50
	tracer := &countingTracer{}
	h, gater := newHost(t, dialer.WithMetricsTracer(tracer))
	node := testnet.NewNode(t)
	node.Stop()
	cfg := profile(3, time.Second, 2*time.Second) // a round of >= 2.8s: every caller joins it
	if err := h.SetProfile(node.ID(), cfg); err != nil {
		t.Fatal(err)
	}
	start := make(chan struct{})
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			<-start
			errs <- h.Connect(ctxTimeout(t), node.AddrInfo())
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, resilience.ErrExhausted) || errors.Is(err, resilience.ErrPermanent) {
			t.Fatalf("Connect = %v, want ErrExhausted", err)
		}
	}
	if n := gater.Dials(node.ID()); n != int(cfg.MaxAttempts) {
		t.Fatalf("real dials = %d, want MaxAttempts = %d", n, cfg.MaxAttempts)
	}
	if n := tracer.totalDials(); n != int(cfg.MaxAttempts) {
		t.Fatalf("dials reported to the tracer = %d, want %d", n, cfg.MaxAttempts)
	}
	if n := tracer.get(&tracer.joined); n != callers-1 {
		t.Fatalf("joined = %d, want %d", n, callers-1)
	}
	if tr := tracker(h, node.ID()); tr.State != resilience.Exhausted || tr.AttemptCount != cfg.MaxAttempts {
		t.Fatalf("tracker = %v after %d attempts, want Exhausted after %d", tr.State, tr.AttemptCount, cfg.MaxAttempts)
	}
}

func TestCallerLeavingDoesNotStopSharedRound(t *testing.T) {
	tracer := &countingTracer{}
	h, gater := newHost(t, dialer.WithMetricsTracer(tracer))
	node := testnet.NewNode(t)
	node.Stop()
	cfg := profile(3, 500*time.Millisecond, time.Second)
	if err := h.SetProfile(node.ID(), cfg); err != nil {
		t.Fatal(err)
	}
	impatient, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { first <- h.Connect(impatient, node.AddrInfo()) }()
	waitFor(t, "the round to start", func() bool { return gater.Dials(node.ID()) >= 1 })
	go func() { second <- h.Connect(ctxTimeout(t), node.AddrInfo()) }()
	waitFor(t, "the second caller to join", func() bool { return tracer.get(&tracer.joined) == 1 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("impatient caller: %v, want context.Canceled", err)
	}
	if err := <-second; !errors.Is(err, resilience.ErrExhausted) {
		t.Fatalf("patient caller: %v, want ErrExhausted", err)
	}
	if n := gater.Dials(node.ID()); n != int(cfg.MaxAttempts) {
		t.Fatalf("dials = %d, want %d (one round)", n, cfg.MaxAttempts)
	}
}

func TestNewRoundAfterExhausted(t *testing.T) {
	h, gater := newHost(t)
	node := testnet.NewNode(t)
	node.Stop()
	cfg := profile(2, 50*time.Millisecond, 100*time.Millisecond)
	for round := 1; round <= 2; round++ {
		err := h.ConnectWithConfig(ctxTimeout(t), node.AddrInfo(), cfg)
		if !errors.Is(err, resilience.ErrExhausted) {
			t.Fatalf("round %d: %v, want ErrExhausted", round, err)
		}
		if tr := tracker(h, node.ID()); tr.State != resilience.Exhausted || tr.AttemptCount != 2 {
			t.Fatalf("round %d: tracker %v after %d attempts, want Exhausted after 2", round, tr.State, tr.AttemptCount)
		}
		// Every dial really reached the network: the swarm's own backoff would
		// have refused the second and later dials.
		if n := gater.Dials(node.ID()); n != 2*round {
			t.Fatalf("round %d: dials = %d, want %d", round, n, 2*round)
		}
		if errors.Is(tracker(h, node.ID()).LastError, swarm.ErrDialBackoff) {
			t.Fatalf("round %d: last error is the swarm's dial backoff", round)
		}
	}
}

// TestSecondRoundNotBlockedBySwarmBackoff: after a failed round the swarm has
// the peer in its dial backoff (seconds); a new round right after the peer came
// back must connect on its first attempt anyway.
func TestSecondRoundNotBlockedBySwarmBackoff(t *testing.T) {
	h, gater := newHost(t)
	node := testnet.NewNode(t)
	node.Stop()
	cfg := profile(2, 50*time.Millisecond, 100*time.Millisecond)
	if err := h.ConnectWithConfig(ctxTimeout(t), node.AddrInfo(), cfg); !errors.Is(err, resilience.ErrExhausted) {
		t.Fatalf("first round: %v, want ErrExhausted", err)
	}
	node.Start()
	sw := h.Network().(*swarm.Swarm)
	if !sw.Backoff().Backoff(node.ID(), node.Addrs()[0]) {
		t.Fatal("the swarm has no dial backoff for the peer: the test proves nothing")
	}
	if err := h.ConnectWithConfig(ctxTimeout(t), node.AddrInfo(), profile(1, time.Millisecond, time.Millisecond)); err != nil {
		t.Fatalf("second round, one attempt: %v", err)
	}
	if n := gater.Dials(node.ID()); n != 3 {
		t.Fatalf("dials = %d, want 3", n)
	}
}

func TestConnectOnce(t *testing.T) {
	tracer := &countingTracer{}
	h, gater := newHost(t, dialer.WithMetricsTracer(tracer))
	node := testnet.NewNode(t)
	node.Stop()
	if err := h.ConnectWithConfig(ctxTimeout(t), node.AddrInfo(), profile(1, time.Millisecond, time.Millisecond)); !errors.Is(err, resilience.ErrExhausted) {
		t.Fatalf("Connect: %v", err)
	}
	// A probe of a down peer: exactly one dial, recorded, tracker stays Exhausted.
	err := h.ConnectOnce(ctxTimeout(t), node.AddrInfo())
	if err == nil || dialer.Classify(err) != dialer.ClassTransient {
		t.Fatalf("ConnectOnce to a down peer = %v, want a transient error", err)
	}
	if n := gater.Dials(node.ID()); n != 2 {
		t.Fatalf("dials = %d, want 2", n)
	}
	tr := tracker(h, node.ID())
	if tr.State != resilience.Exhausted || tr.AttemptCount != 2 || tr.ConsecutiveFailures != 2 {
		t.Fatalf("tracker = %+v, want Exhausted with 2 attempts and 2 failures", tr)
	}
	// The peer is back while the swarm still has it in backoff: the probe dials anyway.
	node.Start()
	if err := h.ConnectOnce(ctxTimeout(t), node.AddrInfo()); err != nil {
		t.Fatalf("ConnectOnce to a restarted peer: %v", err)
	}
	if tr := tracker(h, node.ID()); tr.State != resilience.Connected {
		t.Fatalf("tracker = %v, want Connected", tr.State)
	}
	if tracer.get(&tracer.cleared) < 3 {
		t.Fatalf("swarm backoff cleared %d times, want one per dial", tracer.get(&tracer.cleared))
	}
	// A permanent error is marked and fails the tracker after one attempt.
	wrong := peer.AddrInfo{ID: randomID(t), Addrs: node.Addrs()}
	if err := h.ConnectOnce(ctxTimeout(t), wrong); !resilience.IsPermanent(err) {
		t.Fatalf("ConnectOnce with a wrong peer ID = %v, want permanent", err)
	}
	if tr := tracker(h, wrong.ID); tr.State != resilience.Failed || tr.AttemptCount != 1 {
		t.Fatalf("tracker = %v after %d attempts, want Failed after 1", tr.State, tr.AttemptCount)
	}
}

func TestNewStreamConnectsWithRetries(t *testing.T) {
	h, _ := newHost(t)
	node := testnet.NewNode(t)
	node.Stop()
	if err := h.SetProfile(node.ID(), fastProfile()); err != nil {
		t.Fatal(err)
	}
	h.Peerstore().AddAddrs(node.ID(), node.Addrs(), time.Hour)
	const proto = "/dialer-test/1.0.0"
	type result struct {
		s   network.Stream
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := h.NewStream(ctxTimeout(t), node.ID(), proto)
		done <- result{s, err}
	}()
	waitFor(t, "a failed attempt", func() bool { return tracker(h, node.ID()).ConsecutiveFailures >= 1 })
	node.Start()
	node.Host().SetStreamHandler(proto, func(s network.Stream) { _ = s.Close() })
	r := <-done
	if r.err != nil {
		t.Fatalf("NewStream: %v", r.err)
	}
	_ = r.s.Close()
}

func TestNotifieeTracksConnections(t *testing.T) {
	h, _ := newHost(t)
	node := testnet.NewNode(t)
	// An inbound connection nobody dialed through the Host.
	if err := node.Host().Connect(ctxTimeout(t), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tracker Connected", func() bool { return tracker(h, node.ID()).State == resilience.Connected })
	node.Stop()
	waitFor(t, "tracker Idle", func() bool { return tracker(h, node.ID()).State == resilience.Idle })
}

func TestWrapRecordsExistingConnections(t *testing.T) {
	g := &countingGater{}
	raw := newRawHost(t, g)
	node := testnet.NewNode(t)
	if err := raw.Connect(ctxTimeout(t), node.AddrInfo()); err != nil {
		_ = raw.Close()
		t.Fatal(err)
	}
	h, err := dialer.Wrap(raw)
	if err != nil {
		_ = raw.Close()
		t.Fatal(err)
	}
	defer h.Close()
	if tr := tracker(h, node.ID()); tr.State != resilience.Connected {
		t.Fatalf("tracker = %v, want Connected", tr.State)
	}
}

func TestKeptPeerReconnectsAfterRestart(t *testing.T) {
	tracer := &countingTracer{}
	h, _ := newHost(t, dialer.WithMetricsTracer(tracer))
	node := testnet.NewNode(t)
	if err := h.SetProfile(node.ID(), fastProfile()); err != nil {
		t.Fatal(err)
	}
	h.KeepConnected(node.AddrInfo())
	if !h.Kept(node.ID()) {
		t.Fatal("Kept = false after KeepConnected")
	}
	connected := func() bool { return h.Network().Connectedness(node.ID()) == network.Connected }
	waitFor(t, "the first connection", connected)
	for restart := 1; restart <= 2; restart++ {
		node.Stop()
		waitFor(t, "the disconnect to be seen", func() bool { return !connected() })
		waitFor(t, "a reconnect attempt to fail", func() bool { return tracker(h, node.ID()).ConsecutiveFailures >= 1 })
		node.Start()
		waitFor(t, "the kept peer to be reconnected", connected)
		waitFor(t, "the tracker to show it", func() bool { return tracker(h, node.ID()).State == resilience.Connected })
		if n := tracer.get(&tracer.ok); n < restart {
			t.Fatalf("restart %d: ReconnectSucceeded = %d", restart, n)
		}
	}
}

func TestForgetStopsReconnecting(t *testing.T) {
	h, gater := newHost(t)
	node := testnet.NewNode(t)
	node.Stop()
	if err := h.SetProfile(node.ID(), profile(0, 50*time.Millisecond, 100*time.Millisecond)); err != nil { // unlimited
		t.Fatal(err)
	}
	h.KeepConnected(node.AddrInfo())
	waitFor(t, "reconnect attempts", func() bool { return gater.Dials(node.ID()) >= 2 })
	h.Forget(node.ID())
	if h.Kept(node.ID()) {
		t.Fatal("Kept = true after Forget")
	}
	waitFor(t, "the abandoned round to end", func() bool { return tracker(h, node.ID()).State == resilience.Idle })
	h.Forget(node.ID()) // no-op
}

// TestKeptPeerThatDropsUsIsNotStormed: a peer whose gater refuses us after the
// handshake makes every dial "succeed" and then drops the connection. The
// reconnects must slow down like retries, not follow each other at once.
func TestKeptPeerThatDropsUsIsNotStormed(t *testing.T) {
	h, gater := newHost(t)
	node := testnet.NewNode(t)
	node.Gater().Block(h.ID())
	cfg := profile(3, 200*time.Millisecond, 2*time.Second)
	if err := h.SetProfile(node.ID(), cfg); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.KeepConnected(node.AddrInfo())
	const dials = 5
	waitFor(t, "reconnects", func() bool { return gater.Dials(node.ID()) >= dials })
	// Lower bound only (a slow machine makes it longer): the waits after flaps
	// 1..3 are at least 0.95 * (200ms + 400ms + 800ms).
	minimum := time.Duration(0.95 * float64(1400*time.Millisecond))
	if elapsed := time.Since(start); elapsed < minimum {
		t.Fatalf("%d dials in %v, want the reconnects spaced by at least %v", dials, elapsed, minimum)
	}
}

func TestCloseEndsRoundsAndIsIdempotent(t *testing.T) {
	g := &countingGater{}
	raw := newRawHost(t, g)
	h, err := dialer.Wrap(raw)
	if err != nil {
		t.Fatal(err)
	}
	node := testnet.NewNode(t)
	node.Stop()
	if err := h.SetProfile(node.ID(), profile(5, time.Hour, time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.KeepConnected(peer.AddrInfo{ID: randomID(t), Addrs: node.Addrs()})
	done := make(chan error, 1)
	go func() { done <- h.Connect(context.Background(), node.AddrInfo()) }()
	waitFor(t, "the round to wait in backoff", func() bool { return tracker(h, node.ID()).State == resilience.Retrying })
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, dialer.ErrClosed) {
		t.Fatalf("Connect during Close = %v, want ErrClosed", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := h.Connect(context.Background(), node.AddrInfo()); !errors.Is(err, dialer.ErrClosed) {
		t.Fatalf("Connect after Close = %v, want ErrClosed", err)
	}
	if err := h.ConnectOnce(context.Background(), node.AddrInfo()); !errors.Is(err, dialer.ErrClosed) {
		t.Fatalf("ConnectOnce after Close = %v, want ErrClosed", err)
	}
	h.KeepConnected(node.AddrInfo()) // no-op, must not start a goroutine (goleak)
	if addrs := raw.Network().ListenAddresses(); len(addrs) != 0 {
		t.Fatalf("wrapped host still listens on %v after Close", addrs)
	}
	if err := raw.Network().(*swarm.Swarm).AddListenAddr(ma.StringCast("/ip4/127.0.0.1/tcp/0")); !errors.Is(err, swarm.ErrSwarmClosed) {
		t.Fatalf("listening on the wrapped host after Close = %v, want swarm.ErrSwarmClosed", err)
	}
}

// longDialTimeouts keeps the swarm from ending a dial to a stalling peer on its
// own (its defaults: 5 s for local addresses, 15 s otherwise).
func longDialTimeouts() []libp2p.Option {
	return []libp2p.Option{libp2p.WithDialTimeout(time.Hour), libp2p.SwarmOpts(swarm.WithDialTimeoutLocal(time.Hour))}
}

// TestCloseEndsConnectOnce: Close ends a ConnectOnce whose dial is in flight and
// waits for it; the dial cut short is recorded as canceled, not as a failure of
// the peer.
func TestCloseEndsConnectOnce(t *testing.T) {
	raw := newRawHost(t, &countingGater{}, longDialTimeouts()...)
	h, err := dialer.Wrap(raw)
	if err != nil {
		_ = raw.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	stall := newStallingPeer(t)
	ctx := network.WithDialPeerTimeout(ctxTimeout(t), time.Hour)
	done := make(chan error, 1)
	go func() { done <- h.ConnectOnce(ctx, stall.pi) }()
	stall.waitAccepted(t)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close waited for the call, so its attempt is already recorded.
	if tr := tracker(h, stall.pi.ID); tr.State != resilience.Idle || tr.AttemptCount != 1 || tr.ConsecutiveFailures != 0 || tr.LastError != nil {
		t.Fatalf("tracker right after Close: %v, %d attempts, %d failures, last error %v; want Idle after one canceled attempt",
			tr.State, tr.AttemptCount, tr.ConsecutiveFailures, tr.LastError)
	}
	select {
	case err := <-done:
		if !errors.Is(err, dialer.ErrClosed) || resilience.IsPermanent(err) {
			t.Fatalf("ConnectOnce cut short by Close = %v, want ErrClosed, not permanent", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("ConnectOnce did not return after Close")
	}
}

// TestDialGateTakesASlotPerDial: the Host's one dial gate (here one slot) is
// held by a dial while it dials, not by a round while it waits for its next
// attempt, and a dial's slot is freed when its caller gives up.
func TestDialGateTakesASlotPerDial(t *testing.T) {
	raw := newRawHost(t, &countingGater{}, longDialTimeouts()...)
	h, err := dialer.Wrap(raw, dialer.WithMaxConcurrentDials(1))
	if err != nil {
		_ = raw.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })

	// A down peer: its round fails its first attempt and waits an hour.
	down := testnet.NewNode(t)
	down.Stop()
	downCtx, cancelDown := context.WithCancel(context.Background())
	defer cancelDown()
	downDone := make(chan error, 1)
	go func() {
		downDone <- h.ConnectWithConfig(downCtx, down.AddrInfo(), profile(3, time.Hour, time.Hour))
	}()
	waitFor(t, "the down peer's round to wait for its second attempt", func() bool {
		return tracker(h, down.ID()).State == resilience.Retrying
	})
	// So another peer gets the only slot.
	live := testnet.NewNode(t)
	if err := h.ConnectWithConfig(ctxTimeout(t), live.AddrInfo(), fastProfile()); err != nil {
		t.Fatalf("Connect of a live peer while a down peer's round waits: %v", err)
	}

	// A dial in flight holds the slot until it ends: a second peer waits.
	stall := newStallingPeer(t)
	stallCtx, cancelStall := context.WithCancel(network.WithDialPeerTimeout(context.Background(), time.Hour))
	defer cancelStall()
	stallDone := make(chan error, 1)
	go func() { stallDone <- h.ConnectWithConfig(stallCtx, stall.pi, fastProfile()) }()
	stall.waitAccepted(t)
	other := testnet.NewNode(t)
	otherDone := make(chan error, 1)
	go func() { otherDone <- h.ConnectWithConfig(ctxTimeout(t), other.AddrInfo(), fastProfile()) }()
	select {
	case err := <-otherDone:
		t.Fatalf("a second dial went through while the only slot was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancelStall()
	if err := <-stallDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect whose ctx was cancelled = %v, want context.Canceled", err)
	}
	if err := <-otherDone; err != nil {
		t.Fatalf("Connect waiting for the slot: %v", err)
	}
	cancelDown()
	if err := <-downDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect of the down peer = %v, want context.Canceled", err)
	}
}

func TestProfiles(t *testing.T) {
	boot, other, custom := randomID(t), randomID(t), randomID(t)
	bootCfg := profile(4, 10*time.Millisecond, 20*time.Millisecond)
	defCfg := profile(2, 10*time.Millisecond, 20*time.Millisecond)
	h, _ := newHost(t, dialer.WithBootstrapPeers(boot), dialer.WithBootstrapConfig(bootCfg), dialer.WithDefaultConfig(defCfg))
	late := randomID(t)
	h.AddBootstrapPeers(late, "")
	if err := h.SetProfile(custom, fastProfile()); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[peer.ID]resilience.RetryConfig{boot: bootCfg, late: bootCfg, other: defCfg, custom: fastProfile()} {
		if got := h.Profile(id); got != want {
			t.Errorf("Profile(%s) = %+v, want %+v", id, got, want)
		}
		// A round applies the profile to the tracker (no addresses: one permanent attempt).
		_ = h.Connect(ctxTimeout(t), peer.AddrInfo{ID: id})
		if got := tracker(h, id).Config; got != want {
			t.Errorf("tracker config of %s = %+v, want %+v", id, got, want)
		}
	}
	h.ClearProfile(custom)
	if got := h.Profile(custom); got != defCfg {
		t.Errorf("Profile after ClearProfile = %+v, want the default", got)
	}
	if err := h.SetProfile("", fastProfile()); err == nil {
		t.Error("SetProfile with an empty id succeeded")
	}
	bad := fastProfile()
	bad.JitterFactor = 2
	if err := h.SetProfile(other, bad); err == nil {
		t.Error("SetProfile with an invalid config succeeded")
	}
	if err := h.ConnectWithConfig(ctxTimeout(t), peer.AddrInfo{ID: other}, bad); err == nil {
		t.Error("ConnectWithConfig with an invalid config succeeded")
	}
	if err := h.Connect(ctxTimeout(t), peer.AddrInfo{}); !errors.Is(err, peer.ErrEmptyPeerID) {
		t.Errorf("Connect with an empty ID = %v, want ErrEmptyPeerID", err)
	}
}

func TestWrapRejectsBadOptions(t *testing.T) {
	bad := fastProfile()
	bad.BackoffMultiplier = 0.5
	for _, tc := range []struct {
		name string
		opt  dialer.Option
	}{
		{"nil option", nil},
		{"nil manager", dialer.WithManager(nil)},
		{"invalid default config", dialer.WithDefaultConfig(bad)},
		{"invalid bootstrap config", dialer.WithBootstrapConfig(bad)},
		{"empty bootstrap peer", dialer.WithBootstrapPeers("")},
		{"zero max concurrent dials", dialer.WithMaxConcurrentDials(0)},
		{"negative IP dial rate", dialer.WithIPDialLimit(-1, 1)},
		{"zero IP dial burst", dialer.WithIPDialLimit(1, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := newRawHost(t, &countingGater{})
			defer raw.Close()
			if h, err := dialer.Wrap(raw, tc.opt); err == nil {
				_ = h.Close()
				t.Fatal("Wrap succeeded")
			}
		})
	}
	if _, err := dialer.Wrap(nil); err == nil {
		t.Fatal("Wrap(nil) succeeded")
	}
}

func TestWithManagerSharesTrackers(t *testing.T) {
	m, err := resilience.NewConnectionManager()
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newHost(t, dialer.WithManager(m))
	if h.Manager() != m {
		t.Fatal("Manager() is not the given manager")
	}
	node := testnet.NewNode(t)
	if err := h.Connect(ctxTimeout(t), node.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	if tr, ok := m.Get(dialer.TrackerID(node.ID())); !ok || tr.State != resilience.Connected {
		t.Fatalf("shared manager tracker = %+v, %v; want Connected", tr, ok)
	}
}

// Guards given with WithRetryOptions take part in every round: a per-peer
// circuit breaker that opens after two failures ends the round early.
func TestWithRetryOptionsGuardsRounds(t *testing.T) {
	breakers, err := resilience.NewCircuitBreaker(resilience.WithFailureThreshold(2), resilience.WithOpenTimeout(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	h, gater := newHost(t, dialer.WithDefaultConfig(profile(10, 10*time.Millisecond, 50*time.Millisecond)),
		dialer.WithRetryOptions(func(id peer.ID) []resilience.RetryOption {
			return []resilience.RetryOption{resilience.WithGuards(breakers.Guard(id.String()))}
		}))
	node := testnet.NewNode(t)
	node.Stop()
	err = h.Connect(ctxTimeout(t), node.AddrInfo())
	if !errors.Is(err, resilience.ErrCircuitOpen) {
		t.Fatalf("Connect: %v, want the open circuit", err)
	}
	if n := gater.Dials(node.ID()); n != 2 {
		t.Fatalf("%d dials, want 2 (the breaker's threshold)", n)
	}
	// The next round is refused before any dial.
	if err := h.Connect(ctxTimeout(t), node.AddrInfo()); !errors.Is(err, resilience.ErrCircuitOpen) || gater.Dials(node.ID()) != 2 {
		t.Fatalf("second round: %v after %d dials", err, gater.Dials(node.ID()))
	}
}

// TestWebRTCProfile: a peer whose only usable addresses are /webrtc-direct
// gets the WebRTC profile (circuit addresses do not count); a peer with any
// TCP or QUIC address, a bootstrap peer and a peer with a profile of its own
// keep theirs.
func TestWebRTCProfile(t *testing.T) {
	webrtc := ma.StringCast("/ip4/127.0.0.1/udp/4001/webrtc-direct/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1C5rUZxh5_Bw")
	tcpA := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	circuit := ma.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/p2p-circuit")
	webrtcCfg := profile(2, 5*time.Millisecond, 10*time.Millisecond)
	boot := randomID(t)
	h, _ := newHost(t, dialer.WithWebRTCConfig(webrtcCfg), dialer.WithBootstrapPeers(boot))
	def := resilience.ForDHTPeer()
	for _, tc := range []struct {
		name  string
		id    peer.ID
		addrs []ma.Multiaddr
		want  resilience.RetryConfig
	}{
		{"webrtc-direct only", randomID(t), []ma.Multiaddr{webrtc}, webrtcCfg},
		{"webrtc-direct and a circuit", randomID(t), []ma.Multiaddr{webrtc, circuit}, webrtcCfg},
		{"webrtc-direct and tcp", randomID(t), []ma.Multiaddr{webrtc, tcpA}, def},
		{"tcp only", randomID(t), []ma.Multiaddr{tcpA}, def},
		{"circuit only", randomID(t), []ma.Multiaddr{circuit}, def},
		{"no address", randomID(t), nil, def},
		{"bootstrap peer", boot, []ma.Multiaddr{webrtc}, resilience.ForDHTBootstrap()},
	} {
		h.Peerstore().AddAddrs(tc.id, tc.addrs, time.Hour)
		if got := h.Profile(tc.id); got != tc.want {
			t.Errorf("%s: Profile = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	raw := newRawHost(t, &countingGater{})
	defer raw.Close()
	if _, err := dialer.Wrap(raw, dialer.WithWebRTCConfig(resilience.RetryConfig{BackoffMultiplier: 0.5})); err == nil ||
		!strings.Contains(err.Error(), "WithWebRTCConfig") {
		t.Errorf("a bad WebRTC profile: %v, want an error naming WithWebRTCConfig", err)
	}
}
