package main

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	alice = peer.ID("alice")
	bob   = peer.ID("bob")
)

// deliverTo returns an accept callback appending to *got.
func deliverTo(got *[]string, what string) func() {
	return func() { *got = append(*got, what) }
}

func TestInboxOrderAndDuplicates(t *testing.T) {
	in := newInbox()
	var got []string
	for _, tc := range []struct {
		from    peer.ID
		session string
		seq     uint64
		deliver bool
		ack     uint64
	}{
		{alice, "a1", 1, true, 1},
		{alice, "a1", 2, true, 2},
		{alice, "a1", 2, false, 2}, // resend: acked again, not shown
		{alice, "a1", 1, false, 2},
		{bob, "b1", 5, true, 5}, // first message of a session: any seq (earlier ones went to our last run)
		{alice, "a1", 3, true, 3},
		{bob, "b1", 4, false, 5},
		{bob, "b1", 7, true, 7}, // monotonic: a gap cannot happen on one stream, but is harmless
	} {
		what := fmt.Sprintf("%s/%s/%d", string(tc.from), tc.session, tc.seq)
		v := in.accept(tc.from, tc.session, tc.seq, deliverTo(&got, what))
		if v.deliver != tc.deliver || v.ack != tc.ack || v.restarted {
			t.Fatalf("%s: verdict %+v, want deliver=%v ack=%d", what, v, tc.deliver, tc.ack)
		}
	}
	if n := in.duplicates(); n != 3 {
		t.Fatalf("%d duplicates counted, want 3", n)
	}
	want := []string{"alice/a1/1", "alice/a1/2", "bob/b1/5", "alice/a1/3", "bob/b1/7"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

func TestInboxSessions(t *testing.T) {
	in := newInbox()
	var got []string
	in.accept(alice, "old", 1, deliverTo(&got, "old1"))
	in.accept(alice, "old", 2, deliverTo(&got, "old2"))

	// Alice restarted: her new session starts at 1 again and must not be
	// taken for duplicates.
	if v := in.hello(alice, "new"); !v.restarted {
		t.Fatalf("hello with a new session: %+v, want restarted", v)
	}
	if v := in.accept(alice, "new", 1, deliverTo(&got, "new1")); !v.deliver || v.ack != 1 || v.restarted {
		t.Fatalf("first message of the new session: %+v", v)
	}
	// A late frame of the dead session is refused, and does not reset the state.
	if v := in.accept(alice, "old", 3, deliverTo(&got, "old3")); v.deliver || v.ack != 0 {
		t.Fatalf("message of an ended session: %+v, want dropped without ack", v)
	}
	if v := in.hello(alice, "old"); v.restarted {
		t.Fatalf("hello of an ended session: %+v", v)
	}
	if v := in.accept(alice, "new", 1, deliverTo(&got, "new1 again")); v.deliver || v.ack != 1 {
		t.Fatalf("resend in the new session after a stale frame: %+v", v)
	}
	// A restart announced by its first message rather than a hello.
	if v := in.accept(alice, "newer", 1, deliverTo(&got, "newer1")); !v.deliver || !v.restarted {
		t.Fatalf("first message of another session: %+v, want delivered and restarted", v)
	}
	want := []string{"old1", "old2", "new1", "newer1"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}

	// Only the last maxEndedSessions sessions are remembered.
	for i := range maxEndedSessions + 5 {
		in.hello(bob, fmt.Sprintf("b%d", i))
	}
	if n := len(in.senders[bob].ended); n != maxEndedSessions {
		t.Fatalf("%d ended sessions kept, want %d", n, maxEndedSessions)
	}
}

func TestInboxClosing(t *testing.T) {
	in := newInbox()
	var got []string
	in.accept(alice, "a", 1, deliverTo(&got, "1"))
	in.close()
	if v := in.accept(alice, "a", 2, deliverTo(&got, "2")); v.deliver || v.ack != 0 {
		t.Fatalf("after close: %+v, want neither shown nor acked (the partner resends to our next run)", v)
	}
	if v := in.accept(alice, "a", 1, deliverTo(&got, "1 again")); v.ack != 0 {
		t.Fatalf("duplicate after close acked: %+v", v)
	}
	if len(got) != 1 {
		t.Fatalf("delivered %v", got)
	}
}

// TestProtocolOverLossyStreams runs the outbox and inbox against each other
// without a network: every "stream" resends all unacknowledged messages,
// dies after a random number of frames, and loses a random suffix of the
// acks; sometimes the receiver restarts (a fresh inbox) after acking all it
// showed, as a graceful close does. Every message must be shown exactly once,
// in order.
func TestProtocolOverLossyStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		out := newOutbox("s")
		in := newInbox()
		var shown []uint64
		const total = 40
		typed := 0
		for streams := 0; len(shown) < total; streams++ {
			if streams > 10000 {
				t.Fatalf("trial %d: no progress, shown %v", trial, shown)
			}
			for typed < total && rng.IntN(3) > 0 {
				typed++
				out.add(fmt.Sprint(typed), time.Time{}, false)
			}
			if rng.IntN(10) == 0 && len(shown) > 0 {
				// The receiver restarts after a graceful goodbye: its acks
				// for everything it showed reached the sender first.
				out.ack("s", shown[len(shown)-1])
				in = newInbox()
			}
			budget := rng.IntN(6) // frames this stream carries before it dies
			var acks []uint64
			var sent uint64
			for ; budget > 0; budget-- {
				m, ok, _ := out.after(sent)
				if !ok {
					break
				}
				sent = m.Seq
				v := in.accept(alice, "s", m.Seq, func() { shown = append(shown, m.Seq) })
				if v.ack > 0 {
					acks = append(acks, v.ack)
				}
			}
			for _, a := range acks[:rng.IntN(len(acks)+1)] { // the rest are lost
				out.ack("s", a)
			}
		}
		for i, s := range shown {
			if s != uint64(i+1) {
				t.Fatalf("trial %d: shown %v, want 1..%d once each", trial, shown, total)
			}
		}
	}
}
