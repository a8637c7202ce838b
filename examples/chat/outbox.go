package main

import (
	"context"
	"sync"
	"time"
)

// message is one outgoing chat message.
type message struct {
	Seq     uint64
	Time    time.Time // when it was typed
	Text    string
	Pending bool // typed while the partner was unreachable, shown as pending
}

// outbox numbers outgoing messages and keeps every one until the partner
// acknowledges it. Safe for concurrent use.
type outbox struct {
	session string

	mu      sync.Mutex
	lastSeq uint64
	queue   []message     // unacknowledged, ascending Seq
	changed chan struct{} // closed and replaced on every change
}

func newOutbox(session string) *outbox {
	return &outbox{session: session, changed: make(chan struct{})}
}

// broadcastLocked wakes everyone waiting on the current changed channel.
func (o *outbox) broadcastLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// add queues text as the next message and returns it.
func (o *outbox) add(text string, at time.Time, pending bool) message {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastSeq++
	m := message{Seq: o.lastSeq, Time: at, Text: text, Pending: pending}
	o.queue = append(o.queue, m)
	o.broadcastLocked()
	return m
}

// ack removes every message of this outbox's session up to and including seq
// and returns them. Acks for another session, for messages never sent, or
// already acknowledged are ignored (nil).
func (o *outbox) ack(session string, seq uint64) []message {
	if session != o.session {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if seq > o.lastSeq {
		return nil // the partner cannot have seen it: ignore rather than trust it
	}
	n := 0
	for n < len(o.queue) && o.queue[n].Seq <= seq {
		n++
	}
	if n == 0 {
		return nil
	}
	acked := append([]message(nil), o.queue[:n]...)
	o.queue = append(o.queue[:0:0], o.queue[n:]...)
	o.broadcastLocked()
	return acked
}

// after returns the first unacknowledged message with Seq > seq. If there is
// none, ok is false and changed is closed at the next change.
func (o *outbox) after(seq uint64) (m message, ok bool, changed <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.queue {
		if m.Seq > seq {
			return m, true, nil
		}
	}
	return message{}, false, o.changed
}

// unacked returns a copy of the unacknowledged messages, oldest first.
func (o *outbox) unacked() []message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]message(nil), o.queue...)
}

// waitEmpty waits until every message is acknowledged or ctx ends.
func (o *outbox) waitEmpty(ctx context.Context) error {
	for {
		o.mu.Lock()
		empty, changed := len(o.queue) == 0, o.changed
		o.mu.Unlock()
		if empty {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
