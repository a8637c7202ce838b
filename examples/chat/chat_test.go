package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/internal/testnet"
)

// waitTimeout is generous: the machine running the tests may be slow and busy.
const waitTimeout = 90 * time.Second

const listenAny = "/ip4/127.0.0.1/tcp/0"

// recorder collects a peer's events. Safe for concurrent use.
type recorder struct {
	mu     sync.Mutex
	events []chatEvent
}

func (r *recorder) emit(e chatEvent) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) all() []chatEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// received returns the texts of the messages received, in order.
func (r *recorder) received() []string {
	var out []string
	for _, e := range r.all() {
		if m, ok := e.(evtMessageReceived); ok {
			out = append(out, m.Text)
		}
	}
	return out
}

// count returns how many events satisfy match.
func (r *recorder) count(match func(chatEvent) bool) int {
	n := 0
	for _, e := range r.all() {
		if match(e) {
			n++
		}
	}
	return n
}

// syncWriter serializes writes to w and reads of it.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testnet.WaitFor(t, waitTimeout, what, cond)
}

func testKey(t *testing.T) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testConfig is a peer with fast reconnects for tests.
func testConfig(t *testing.T, key crypto.PrivKey, listen string, partner *peer.AddrInfo, rec *recorder) appConfig {
	return appConfig{
		key:          key,
		listen:       []ma.Multiaddr{ma.StringCast(listen)},
		partner:      partner,
		retry:        partnerRetry(50*time.Millisecond, 500*time.Millisecond),
		emit:         rec.emit,
		closeTimeout: 10 * time.Second,
	}
}

// startTestApp starts a peer and closes it at the end of the test. Starting
// on a fixed port retries while the port is still busy.
func startTestApp(t *testing.T, key crypto.PrivKey, listen string, partner *peer.AddrInfo, rec *recorder) *app {
	t.Helper()
	return startTestAppWith(t, testConfig(t, key, listen, partner, rec))
}

func startTestAppWith(t *testing.T, cfg appConfig) *app {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		a, err := startApp(cfg)
		if err == nil {
			t.Cleanup(a.close)
			return a
		}
		if !strings.Contains(err.Error(), "address already in use") || time.Now().After(deadline) {
			t.Fatalf("startApp: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// addrInfo returns a running peer's id and listen addresses.
func addrInfo(a *app) peer.AddrInfo {
	return peer.AddrInfo{ID: a.h.ID(), Addrs: a.h.Addrs()}
}

func send(t *testing.T, a *app, text string) {
	t.Helper()
	if _, err := a.chat.send(text); err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func TestTwoPeersBothWays(t *testing.T) {
	recA, recB := &recorder{}, &recorder{}
	b := startTestApp(t, testKey(t), listenAny, nil, recB)
	bInfo := addrInfo(b)
	a := startTestApp(t, testKey(t), listenAny, &bInfo, recA)

	send(t, a, "a1")
	send(t, b, "b1") // b has no partner yet, or just got one: queued either way
	send(t, a, "a2")
	send(t, b, "b2")
	waitFor(t, "b to receive a1, a2", func() bool { return len(recB.received()) >= 2 })
	waitFor(t, "a to receive b1, b2", func() bool { return len(recA.received()) >= 2 })
	waitFor(t, "both outboxes to drain", func() bool {
		return len(a.chat.out.unacked()) == 0 && len(b.chat.out.unacked()) == 0
	})
	if got := recB.received(); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Fatalf("b received %q", got)
	}
	if got := recA.received(); !slices.Equal(got, []string{"b1", "b2"}) {
		t.Fatalf("a received %q", got)
	}
	for _, e := range recB.all() {
		if m, ok := e.(evtMessageReceived); ok && (m.From != a.h.ID() || m.Time.IsZero() || time.Since(m.Time) > time.Hour) {
			t.Fatalf("b's message event %+v: want from %s with the send time", m, a.h.ID())
		}
	}
	if b.chat.currentPartner() != a.h.ID() {
		t.Fatalf("listening peer's partner = %s, want %s", b.chat.currentPartner(), a.h.ID())
	}
}

// TestRestartWhileOtherKeepsSending closes one peer and starts it again on
// the same port with the same key while the other keeps sending: every
// message arrives once, in order, across both runs of the restarted peer.
func TestRestartWhileOtherKeepsSending(t *testing.T) {
	for _, restartListener := range []bool{true, false} {
		name := "dialing peer restarts"
		if restartListener {
			name = "listening peer restarts"
		}
		t.Run(name, func(t *testing.T) {
			testRestartWhileOtherKeepsSending(t, restartListener)
		})
	}
}

func testRestartWhileOtherKeepsSending(t *testing.T, restartListener bool) {
	keyL, keyD := testKey(t), testKey(t)
	recL, recD := &recorder{}, &recorder{}
	listener := startTestApp(t, keyL, listenAny, nil, recL)
	lInfo := addrInfo(listener)
	dialing := startTestApp(t, keyD, listenAny, &lInfo, recD)

	sender, recSender := dialing, recD
	restartKey, restartRec := keyL, recL
	restartAddr := listener.h.Addrs()[0].String()
	var restartPartner *peer.AddrInfo
	stop := listener.close
	if !restartListener {
		sender, recSender = listener, recL
		restartKey, restartRec = keyD, recD
		restartAddr = dialing.h.Addrs()[0].String()
		restartPartner = &lInfo
		stop = dialing.close
	}

	// The sender types a line every 5ms until told to stop.
	var (
		mu      sync.Mutex
		sent    int
		stopped = make(chan struct{})
		wg      sync.WaitGroup
	)
	sentSoFar := func() int { mu.Lock(); defer mu.Unlock(); return sent }
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stopped:
				return
			case <-time.After(5 * time.Millisecond):
			}
			mu.Lock()
			sent++
			n := sent
			mu.Unlock()
			if _, err := sender.chat.send(fmt.Sprintf("m%d", n)); err != nil {
				t.Errorf("send m%d: %v", n, err)
				return
			}
		}
	}()
	defer func() {
		select {
		case <-stopped:
		default:
			close(stopped)
		}
		wg.Wait()
	}()

	waitFor(t, "20 messages to arrive before the restart", func() bool { return len(restartRec.received()) >= 20 })
	stop()
	before := restartRec.received()
	mark := sentSoFar()
	waitFor(t, "the sender to queue 20 messages while its partner is down", func() bool { return sentSoFar() >= mark+20 })
	if !restartListener {
		// Wait until the listener tried to reach its partner and failed.
		waitFor(t, "the listener to retry", func() bool {
			return recSender.count(func(e chatEvent) bool { _, ok := e.(evtReconnectScheduled); return ok }) > 0
		})
	}

	rec2 := &recorder{}
	restarted := startTestApp(t, restartKey, restartAddr, restartPartner, rec2)
	if restarted.h.ID() != peer.ID(lInfo.ID) && restartListener {
		t.Fatalf("restarted with id %s, want %s", restarted.h.ID(), lInfo.ID)
	}
	waitFor(t, "20 more messages after the restart", func() bool { return len(rec2.received()) >= 20 })
	close(stopped)
	wg.Wait()
	total := sentSoFar()
	waitFor(t, fmt.Sprintf("all %d messages to arrive", total), func() bool {
		got := rec2.received()
		return len(got) > 0 && got[len(got)-1] == fmt.Sprintf("m%d", total)
	})
	waitFor(t, "the sender's outbox to drain", func() bool { return len(sender.chat.out.unacked()) == 0 })

	all := append(before, rec2.received()...)
	if want := numbered("m", 1, total); !slices.Equal(all, want) {
		t.Fatalf("received across the restart (%d + %d): %q\nwant m1..m%d once each, in order", len(before), len(rec2.received()), all, total)
	}
	if n := recSender.count(func(e chatEvent) bool { _, ok := e.(evtPartnerDisconnected); return ok }); n == 0 {
		t.Error("the sender was never told its partner disconnected")
	}
	if restartListener {
		if n := recSender.count(func(e chatEvent) bool { _, ok := e.(evtReconnectScheduled); return ok }); n == 0 {
			t.Error("the sender never showed a reconnect attempt")
		}
	}
	if n := recSender.count(func(e chatEvent) bool { _, ok := e.(evtMessageQueued); return ok }); n == 0 {
		t.Error("no message was shown as pending while the partner was down")
	}
	if n := recSender.count(func(e chatEvent) bool { _, ok := e.(evtMessagesDelivered); return ok }); n == 0 {
		t.Error("pending messages were never reported delivered")
	}
}

// TestSenderRestartsWithNewSession: a peer that quits and comes back with the
// same key starts a new session at seq 1; its partner must not take those
// messages for duplicates.
func TestSenderRestartsWithNewSession(t *testing.T) {
	key := testKey(t)
	recB := &recorder{}
	b := startTestApp(t, testKey(t), listenAny, nil, recB)
	bInfo := addrInfo(b)

	a1 := startTestApp(t, key, listenAny, &bInfo, &recorder{})
	for _, s := range numbered("x", 1, 5) {
		send(t, a1, s)
	}
	waitFor(t, "b to receive x1..x5", func() bool { return len(recB.received()) == 5 })
	waitFor(t, "a1's outbox to drain", func() bool { return len(a1.chat.out.unacked()) == 0 })
	session1 := a1.chat.session
	a1.close()

	a2 := startTestApp(t, key, listenAny, &bInfo, &recorder{})
	if a2.chat.session == session1 {
		t.Fatal("a restarted peer reused its session id")
	}
	for _, s := range numbered("x", 6, 10) {
		send(t, a2, s)
	}
	waitFor(t, "b to receive x6..x10", func() bool { return len(recB.received()) >= 10 })
	waitFor(t, "a2's outbox to drain", func() bool { return len(a2.chat.out.unacked()) == 0 })
	if got := recB.received(); !slices.Equal(got, numbered("x", 1, 10)) {
		t.Fatalf("b received %q, want x1..x10", got)
	}
	if n := recB.count(func(e chatEvent) bool { r, ok := e.(evtPartnerRestarted); return ok && r.Peer == a2.h.ID() }); n != 1 {
		t.Fatalf("b saw %d restarts of its partner, want 1", n)
	}
}

// TestOtherPeersRefused: a listening peer chats with one partner; a third
// peer is refused while the partner is connected, and nothing it sends is
// shown.
func TestOtherPeersRefused(t *testing.T) {
	recB, recC := &recorder{}, &recorder{}
	b := startTestApp(t, testKey(t), listenAny, nil, recB)
	bInfo := addrInfo(b)
	a := startTestApp(t, testKey(t), listenAny, &bInfo, &recorder{})
	send(t, a, "from a")
	waitFor(t, "b to adopt a", func() bool { return len(recB.received()) == 1 })

	c := startTestApp(t, testKey(t), listenAny, &bInfo, recC)
	send(t, c, "from c")
	waitFor(t, "b to refuse c", func() bool {
		return recB.count(func(e chatEvent) bool {
			r, ok := e.(evtPeerRejected)
			return ok && r.Peer == c.h.ID() && r.Partner == a.h.ID()
		}) > 0
	})
	send(t, a, "from a again")
	waitFor(t, "b to receive a's second message", func() bool { return len(recB.received()) == 2 })
	if got := recB.received(); !slices.Equal(got, []string{"from a", "from a again"}) {
		t.Fatalf("b received %q", got)
	}
	if n := len(c.chat.out.unacked()); n != 1 {
		t.Fatalf("c has %d unacked messages, want its 1 refused message", n)
	}
}

// TestListenerTakesNewPartner: with --allow-new-partner, when the partner a
// listening peer adopted is gone for good (it had no fixed identity), the
// next peer becomes the partner and receives what was queued.
func TestListenerTakesNewPartner(t *testing.T) {
	recB, recA2 := &recorder{}, &recorder{}
	cfg := testConfig(t, testKey(t), listenAny, nil, recB)
	cfg.allowNewPartner = true
	b := startTestAppWith(t, cfg)
	bInfo := addrInfo(b)
	a1 := startTestApp(t, testKey(t), listenAny, &bInfo, &recorder{})
	send(t, a1, "hi")
	waitFor(t, "b to adopt a1", func() bool { return len(recB.received()) == 1 })
	a1ID := a1.h.ID()
	a1.close()
	waitFor(t, "b to see a1 go", func() bool {
		return recB.count(func(e chatEvent) bool { d, ok := e.(evtPartnerDisconnected); return ok && d.Peer == a1ID }) > 0
	})
	send(t, b, "anyone there?")

	a2 := startTestApp(t, testKey(t), listenAny, &bInfo, recA2)
	waitFor(t, "a2 to receive the queued message", func() bool { return len(recA2.received()) == 1 })
	if got := recA2.received(); got[0] != "anyone there?" {
		t.Fatalf("a2 received %q", got)
	}
	if b.chat.currentPartner() != a2.h.ID() {
		t.Fatalf("b's partner is %s, want a2 %s", b.chat.currentPartner(), a2.h.ID())
	}
}

// TestRendezvous: two peers find each other through a DHT whose only
// bootstrap node runs on 127.0.0.1.
func TestRendezvous(t *testing.T) {
	boot := testnet.NewNode(t, testnet.WithDHT(dht.ModeServer))
	recA, recB := &recorder{}, &recorder{}
	cfg := func(rec *recorder) appConfig {
		c := testConfig(t, testKey(t), listenAny, nil, rec)
		c.rendezvous = "resilience-chat-test-room"
		c.bootstrap = []peer.AddrInfo{boot.AddrInfo()}
		return c
	}
	a := startTestAppWith(t, cfg(recA))
	b := startTestAppWith(t, cfg(recB))
	waitFor(t, "both peers to find a partner", func() bool {
		return a.chat.currentPartner() == b.h.ID() && b.chat.currentPartner() == a.h.ID()
	})
	send(t, a, "found you")
	send(t, b, "found you too")
	waitFor(t, "messages both ways", func() bool { return len(recA.received()) == 1 && len(recB.received()) == 1 })
	if recA.received()[0] != "found you too" || recB.received()[0] != "found you" {
		t.Fatalf("a got %q, b got %q", recA.received(), recB.received())
	}
}

// TestLostAcksResentAndDeduplicated: messages whose acks were lost are resent
// on the next connection, and the receiver drops what it showed already.
func TestLostAcksResentAndDeduplicated(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	recA, recB := &recorder{}, &recorder{}
	cfgB := testConfig(t, testKey(t), listenAny, nil, recB)
	cfgB.holdAcks = hold.Load
	b := startTestAppWith(t, cfgB)
	bInfo := addrInfo(b)
	a := startTestApp(t, testKey(t), listenAny, &bInfo, recA)

	for _, s := range numbered("m", 1, 5) {
		send(t, a, s)
	}
	waitFor(t, "b to show m1..m5", func() bool { return len(recB.received()) == 5 })
	if n := len(a.chat.out.unacked()); n != 5 {
		t.Fatalf("a has %d unacked, want 5 (acks held back)", n)
	}
	connected := func() int {
		return recA.count(func(e chatEvent) bool { _, ok := e.(evtPartnerConnected); return ok })
	}
	before := connected()
	if err := a.h.Network().ClosePeer(b.h.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a to reconnect", func() bool { return connected() > before })
	waitFor(t, "b to drop the 5 resent messages", func() bool { return b.chat.status().Duplicates >= 5 })
	send(t, a, "m6")
	waitFor(t, "b to show m6", func() bool { return len(recB.received()) >= 6 })
	hold.Store(false)
	send(t, a, "m7")
	waitFor(t, "a's outbox to drain", func() bool { return len(a.chat.out.unacked()) == 0 })
	if got := recB.received(); !slices.Equal(got, numbered("m", 1, 7)) {
		t.Fatalf("b showed %q, want m1..m7 once each", got)
	}
}

// TestNewPartnerRefusedByDefault: without --allow-new-partner, a peer that
// comes while the adopted partner is away is refused and sees nothing of what
// was queued for the partner; the partner itself (same key) comes back.
func TestNewPartnerRefusedByDefault(t *testing.T) {
	recB, recA2, recA1 := &recorder{}, &recorder{}, &recorder{}
	b := startTestApp(t, testKey(t), listenAny, nil, recB)
	bInfo := addrInfo(b)
	keyA1 := testKey(t)
	a1 := startTestApp(t, keyA1, listenAny, &bInfo, &recorder{})
	send(t, a1, "hi")
	waitFor(t, "b to adopt a1", func() bool { return len(recB.received()) == 1 })
	a1ID := a1.h.ID()
	a1.close()
	waitFor(t, "b to see a1 go", func() bool {
		return recB.count(func(e chatEvent) bool { d, ok := e.(evtPartnerDisconnected); return ok && d.Peer == a1ID }) > 0
	})
	send(t, b, "for a1 only")

	a2 := startTestApp(t, testKey(t), listenAny, &bInfo, recA2)
	send(t, a2, "let me in")
	waitFor(t, "b to refuse a2", func() bool {
		return recB.count(func(e chatEvent) bool {
			r, ok := e.(evtPeerRejected)
			return ok && r.Peer == a2.h.ID() && r.Partner == a1ID
		}) > 0
	})
	if p := b.chat.currentPartner(); p != a1ID {
		t.Fatalf("b's partner is %s, want a1 %s", p, a1ID)
	}
	a2.close()
	if got := recA2.received(); len(got) != 0 {
		t.Fatalf("the refused peer received %q", got)
	}
	if got := recB.received(); len(got) != 1 {
		t.Fatalf("b showed the refused peer's messages: %q", got)
	}

	// a1 restarts with its key: still the partner, and gets the queued message.
	a1again := startTestApp(t, keyA1, listenAny, &bInfo, recA1)
	waitFor(t, "a1 to receive the queued message", func() bool { return len(recA1.received()) == 1 })
	if got := recA1.received(); got[0] != "for a1 only" || a1again.h.ID() != a1ID {
		t.Fatalf("a1 received %q", got)
	}
}
