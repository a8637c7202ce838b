package main

import (
	"context"
	"errors"
	"testing"
	"time"
)

func seqsOf(ms []message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOutbox(t *testing.T) {
	o := newOutbox("s1")
	at := time.Unix(1700000000, 0)
	for i, text := range []string{"a", "b", "c", "d"} {
		m := o.add(text, at, i%2 == 0)
		if m.Seq != uint64(i+1) || m.Text != text || !m.Time.Equal(at) || m.Pending != (i%2 == 0) {
			t.Fatalf("add %q: %+v", text, m)
		}
	}
	if m, ok, _ := o.after(0); !ok || m.Seq != 1 {
		t.Fatalf("after(0) = %+v, %v; want seq 1", m, ok)
	}
	if m, ok, _ := o.after(2); !ok || m.Seq != 3 {
		t.Fatalf("after(2) = %+v, %v; want seq 3", m, ok)
	}
	_, ok, changed := o.after(4)
	if ok || changed == nil {
		t.Fatal("after(4) must report nothing and a changed channel")
	}

	if got := o.ack("other-session", 4); got != nil {
		t.Fatalf("ack of another session removed %v", seqsOf(got))
	}
	if got := o.ack("s1", 99); got != nil {
		t.Fatalf("ack beyond the last seq removed %v", seqsOf(got))
	}
	if got := seqsOf(o.ack("s1", 2)); !equalSeqs(got, []uint64{1, 2}) {
		t.Fatalf("ack 2 removed %v, want [1 2]", got)
	}
	select {
	case <-changed:
	default:
		t.Fatal("changed not closed by an ack")
	}
	if got := o.ack("s1", 2); got != nil {
		t.Fatalf("repeated ack removed %v", seqsOf(got))
	}
	if m, ok, _ := o.after(0); !ok || m.Seq != 3 {
		t.Fatalf("after(0) following ack 2 = %+v, %v; want seq 3 (resend from the oldest unacked)", m, ok)
	}
	if got := seqsOf(o.unacked()); !equalSeqs(got, []uint64{3, 4}) {
		t.Fatalf("unacked %v, want [3 4]", got)
	}

	_, _, changed = o.after(4)
	m := o.add("e", at, false)
	if m.Seq != 5 {
		t.Fatalf("seq after acks = %d, want 5 (seqs never reused)", m.Seq)
	}
	select {
	case <-changed:
	default:
		t.Fatal("changed not closed by add")
	}
}

func TestOutboxWaitEmpty(t *testing.T) {
	o := newOutbox("s")
	if err := o.waitEmpty(context.Background()); err != nil {
		t.Fatalf("empty outbox: %v", err)
	}
	o.add("x", time.Now(), false)
	o.add("y", time.Now(), false)
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("gave up")
	cancel(cause)
	if err := o.waitEmpty(ctx); !errors.Is(err, cause) {
		t.Fatalf("waitEmpty with ended ctx: %v, want the cause", err)
	}
	done := make(chan error, 1)
	go func() { done <- o.waitEmpty(context.Background()) }()
	o.ack("s", 1)
	select {
	case err := <-done:
		t.Fatalf("waitEmpty returned (%v) with a message unacked", err)
	case <-time.After(20 * time.Millisecond):
	}
	o.ack("s", 2)
	if err := <-done; err != nil {
		t.Fatalf("waitEmpty: %v", err)
	}
}
