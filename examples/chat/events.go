package main

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// chatEvent is something the user should see. The chat emits events from its own
// goroutines; the function receiving them must be safe for concurrent use and
// return quickly. Messages from one sender are emitted in order.
type chatEvent any

// evtMessageReceived: a message from the partner, shown once.
type evtMessageReceived struct {
	From peer.ID
	Seq  uint64
	Time time.Time // when the sender typed it, by the sender's clock
	Text string
}

// evtMessageQueued: the user's message waits because the partner is not
// reachable right now; it is sent when the partner is back.
type evtMessageQueued struct {
	Seq  uint64
	Text string
}

// evtMessagesDelivered: queued (pending) messages were acknowledged.
type evtMessagesDelivered struct {
	Seqs []uint64
}

// evtPartnerChosen: the chat now talks to Peer (from --peer, the DHT, or
// the first peer that opened a chat stream to a listening peer).
type evtPartnerChosen struct {
	Peer peer.ID
}

// evtPartnerConnected and evtPartnerDisconnected: the partner's libp2p
// connectedness changed.
type evtPartnerConnected struct{ Peer peer.ID }

type evtPartnerDisconnected struct{ Peer peer.ID }

// evtPartnerRestarted: the partner started a new session (it restarted).
type evtPartnerRestarted struct{ Peer peer.ID }

// evtReconnectScheduled: a dial to the partner failed and the next attempt
// follows after Delay.
type evtReconnectScheduled struct {
	Peer    peer.ID
	Attempt uint32
	Delay   time.Duration
	Err     error
}

// evtPeerRejected: a peer other than the partner tried to chat.
type evtPeerRejected struct {
	Peer    peer.ID
	Partner peer.ID
}

// evtInfo: a status line.
type evtInfo struct{ Text string }
