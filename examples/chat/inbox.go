package main

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// maxEndedSessions is how many replaced sessions of one sender are
// remembered (and refused) so a late frame of a dead session cannot reset the
// sender's state.
const maxEndedSessions = 16

// inbox decides which incoming messages to show: each exactly once and in
// order, per sender. Safe for concurrent use.
type inbox struct {
	mu      sync.Mutex
	closing bool
	senders map[peer.ID]*senderState
	dups    uint64 // duplicates dropped
}

// senderState is what the inbox knows about one sender.
type senderState struct {
	session string   // current session
	last    uint64   // highest seq of session shown
	ended   []string // replaced sessions, oldest first
}

// verdict is the inbox's decision about one message.
type verdict struct {
	deliver bool   // show it (done by accept's callback)
	ack     uint64 // cumulative ack to send; 0 = send none
	// restarted is set when the message (or hello) started a new session of a
	// sender whose earlier session the inbox knew: the sender restarted.
	restarted bool
}

func newInbox() *inbox {
	return &inbox{senders: make(map[peer.ID]*senderState)}
}

// stateLocked returns from's state switched to session, or nil if session
// is one the sender has ended (stale). restarted reports a switch away from a
// known session.
func (in *inbox) stateLocked(from peer.ID, session string) (st *senderState, restarted bool) {
	st = in.senders[from]
	if st == nil {
		st = &senderState{session: session}
		in.senders[from] = st
		return st, false
	}
	if st.session == session {
		return st, false
	}
	for _, s := range st.ended {
		if s == session {
			return nil, false
		}
	}
	st.ended = append(st.ended, st.session)
	if len(st.ended) > maxEndedSessions {
		st.ended = st.ended[len(st.ended)-maxEndedSessions:]
	}
	st.session, st.last = session, 0
	return st, true
}

// hello records that from now speaks in session.
func (in *inbox) hello(from peer.ID, session string) verdict {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closing {
		return verdict{}
	}
	_, restarted := in.stateLocked(from, session)
	return verdict{restarted: restarted}
}

// accept decides about message seq of from's session. If the message is new
// (seq above the last one shown for the session) it calls deliver, under the
// inbox's lock so deliveries happen in acceptance order; deliver must not call
// back into the inbox. The first message seen of a session is accepted
// whatever its seq: the messages before it were acknowledged to an earlier
// run of this peer. Duplicates are acked again, not delivered; messages of
// ended sessions and everything after close are neither delivered nor acked.
func (in *inbox) accept(from peer.ID, session string, seq uint64, deliver func()) verdict {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closing {
		return verdict{}
	}
	st, restarted := in.stateLocked(from, session)
	if st == nil {
		return verdict{}
	}
	if seq <= st.last {
		in.dups++
		return verdict{ack: st.last, restarted: restarted}
	}
	st.last = seq
	deliver()
	return verdict{deliver: true, ack: seq, restarted: restarted}
}

// close makes the inbox refuse every later message: nothing is shown that
// could not be acknowledged before this peer goes away.
func (in *inbox) close() {
	in.mu.Lock()
	in.closing = true
	in.mu.Unlock()
}

// duplicates returns how many duplicate messages accept dropped.
func (in *inbox) duplicates() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.dups
}
