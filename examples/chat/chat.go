package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	logging "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"

	"github.com/chiral-network/go-libp2p-resilience/dialer"
)

var log = logging.Logger("resilience/examples/chat")

const (
	// defaultWriteTimeout bounds one frame write to a stalled partner.
	defaultWriteTimeout = 30 * time.Second
	// defaultCloseTimeout bounds the goodbye on a stream: after this peer half
	// closes a stream it waits this long for the partner to finish its side,
	// so acknowledgements in flight arrive.
	defaultCloseTimeout = 3 * time.Second
	// streamOpenTimeout bounds opening a stream on an existing connection.
	streamOpenTimeout = 20 * time.Second
	// Pauses between outgoing streams that ended soon after they were opened
	// (the partner refuses us, or its protocol handler is not up yet).
	minStreamPause = 100 * time.Millisecond
	maxStreamPause = 5 * time.Second
	// healthyStream is how long a stream must live for the pause to reset.
	healthyStream = 5 * time.Second
	// protectTag protects the partner's connection in the connection manager.
	protectTag = "resilience-chat"
)

// errClosed is returned by the chat's methods after close.
var errClosed = errors.New("chat is closed")

// keeper keeps peers connected; *dialer.Host is one.
type keeper interface {
	KeepConnected(pi peer.AddrInfo)
	Forget(id peer.ID)
}

// chatOptions configures a chat; zero values mean the defaults.
type chatOptions struct {
	emit         func(chatEvent)  // receives user-visible events; default: discard
	now          func() time.Time // default time.Now
	writeTimeout time.Duration    // default defaultWriteTimeout
	closeTimeout time.Duration    // default defaultCloseTimeout
	// holdAcks, a test hook, suppresses acknowledgements while it returns
	// true, as if they were lost. Default nil: acks are sent.
	holdAcks func() bool
	// allowNewPartner lets another peer replace a partner that was adopted
	// (not set with setPartner) once it is disconnected. Default false: the
	// first peer that opens a chat stream is the partner for the whole
	// session, so a stranger cannot take the chat over while the partner is
	// away; the partner itself may come back (same peer id, any session).
	allowNewPartner bool
}

// chat is a two-party chat session on a libp2p host: it sends the user's
// messages to one partner peer exactly once and in order, across lost
// connections and restarts of either side, and shows the partner's messages
// the same way (see frame for the protocol).
//
// The partner is set with setPartner or, if none is set, is the first peer
// that opens a chat stream. Other peers are refused (evtPeerRejected), also
// while the partner is disconnected: only with chatOptions.allowNewPartner is
// an adopted partner that is not connected replaced by the next peer that
// opens a stream; one set with setPartner never is. The chat keeps its partner
// connected through its keeper.
//
//	user ── send ──▶ outbox (unacked, seq 1..n) ── sendLoop: one stream at a time,
//	                    ▲                               resends all unacked on each new stream
//	                    └──── ack (cumulative) ◀────────┘
//	partner's stream ──▶ handleStream ──▶ inbox (per sender: session, last seq) ──▶ emit, ack
//
// A chat is safe for concurrent use.
type chat struct {
	h       host.Host
	keep    keeper
	opts    chatOptions
	session string
	out     *outbox
	in      *inbox
	sub     event.Subscription
	wake    chan struct{} // capacity 1: the send loop should look again

	ctx    context.Context // ends with close
	cancel context.CancelFunc
	wg     sync.WaitGroup // send loop, event loop, inbound stream handlers

	mu      sync.Mutex // never held across I/O
	closed  bool
	partner peer.ID
	fixed   bool // partner set by setPartner: never replaced
	linkUp  bool // an outgoing stream to the partner is open
	shownUp bool // the user was last told the partner is connected
	inbound map[network.Stream]struct{}

	closeOnce sync.Once
}

// newChat starts a chat on h with a new random session and registers its
// protocol handler. Close it before h.
func newChat(h host.Host, keep keeper, opts chatOptions) (*chat, error) {
	if opts.emit == nil {
		opts.emit = func(chatEvent) {}
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.writeTimeout <= 0 {
		opts.writeTimeout = defaultWriteTimeout
	}
	if opts.closeTimeout <= 0 {
		opts.closeTimeout = defaultCloseTimeout
	}
	session, err := newSessionID()
	if err != nil {
		return nil, err
	}
	sub, err := h.EventBus().Subscribe([]any{new(event.EvtPeerConnectednessChanged), new(dialer.EvtConnectRetry)}, eventbus.BufSize(64))
	if err != nil {
		return nil, fmt.Errorf("subscribe to host events: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &chat{
		h:       h,
		keep:    keep,
		opts:    opts,
		session: session,
		out:     newOutbox(session),
		in:      newInbox(),
		sub:     sub,
		wake:    make(chan struct{}, 1),
		ctx:     ctx,
		cancel:  cancel,
		inbound: make(map[network.Stream]struct{}),
	}
	h.SetStreamHandler(protocolID, c.handleStream)
	c.wg.Add(2)
	go c.eventLoop()
	go c.sendLoop()
	return c, nil
}

// newSessionID returns 16 random hex digits.
func newSessionID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func (c *chat) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// setPartner makes pi the partner for good (--peer, or found through the
// DHT) and keeps it connected. Peers other than pi are refused from now on.
func (c *chat) setPartner(pi peer.AddrInfo) error {
	if pi.ID == "" {
		return errors.New("partner: empty peer id")
	}
	if pi.ID == c.h.ID() {
		return fmt.Errorf("partner %s is this peer itself", pi.ID)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errClosed
	}
	old := c.partner
	c.partner, c.fixed = pi.ID, true
	c.switchPartnerLocked(old, pi)
	c.mu.Unlock()
	if old != pi.ID {
		c.opts.emit(evtPartnerChosen{Peer: pi.ID})
		if c.connected(pi.ID) {
			c.showConnected(pi.ID, true)
		}
	}
	c.signal()
	return nil
}

// showConnected tells the user that partner p connected or disconnected,
// unless that was the last thing said about it (connectedness events and
// partner changes can report the same connection twice).
func (c *chat) showConnected(p peer.ID, up bool) {
	c.mu.Lock()
	show := c.partner == p && c.shownUp != up
	if show {
		c.shownUp = up
	}
	c.mu.Unlock()
	if !show {
		return
	}
	if up {
		c.opts.emit(evtPartnerConnected{Peer: p})
	} else {
		c.opts.emit(evtPartnerDisconnected{Peer: p})
	}
}

// switchPartnerLocked hands keep-alive and protection from old to the new
// partner pi (c.partner is already pi.ID).
func (c *chat) switchPartnerLocked(old peer.ID, pi peer.AddrInfo) {
	if old != pi.ID {
		c.shownUp = false
	}
	if old != "" && old != pi.ID {
		c.keep.Forget(old)
		c.h.ConnManager().Unprotect(old, protectTag)
	}
	c.h.ConnManager().Protect(pi.ID, protectTag)
	c.keep.KeepConnected(pi)
}

// currentPartner returns the partner, "" if none is chosen yet.
func (c *chat) currentPartner() peer.ID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.partner
}

func (c *chat) connected(id peer.ID) bool {
	return c.h.Network().Connectedness(id) == network.Connected
}

// send queues text for the partner. A message typed while no stream to the
// partner is open is reported as pending (evtMessageQueued).
func (c *chat) send(text string) (message, error) {
	if len(text) > maxTextBytes {
		return message{}, fmt.Errorf("message is %d bytes, max %d", len(text), maxTextBytes)
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return message{}, errClosed
	}
	pending := !c.linkUp
	c.mu.Unlock()
	m := c.out.add(text, c.opts.now(), pending)
	if pending {
		c.opts.emit(evtMessageQueued{Seq: m.Seq, Text: m.Text})
	}
	return m, nil
}

// waitDelivered waits until the partner acknowledged every message or ctx
// ends.
func (c *chat) waitDelivered(ctx context.Context) error { return c.out.waitEmpty(ctx) }

// chatStatus is a snapshot for /status.
type chatStatus struct {
	Session   string
	Partner   peer.ID
	Connected bool
	LinkUp    bool
	Unacked   int
	// Duplicates counts resent messages that were dropped because they had
	// been shown already.
	Duplicates uint64
}

func (c *chat) status() chatStatus {
	c.mu.Lock()
	st := chatStatus{Session: c.session, Partner: c.partner, LinkUp: c.linkUp}
	c.mu.Unlock()
	if st.Partner != "" {
		st.Connected = c.connected(st.Partner)
	}
	st.Unacked = len(c.out.unacked())
	st.Duplicates = c.in.duplicates()
	return st
}

// close says goodbye on every stream (bounded by the close timeout), stops
// the chat's goroutines and removes its protocol handler. Messages that
// arrive after close starts are neither shown nor acknowledged, so the
// partner sends them again to this peer's next run. Idempotent.
func (c *chat) close() {
	c.closeOnce.Do(func() {
		c.in.close()
		c.mu.Lock()
		c.closed = true
		streams := make([]network.Stream, 0, len(c.inbound))
		for s := range c.inbound {
			streams = append(streams, s)
		}
		c.mu.Unlock()
		c.h.RemoveStreamHandler(protocolID)
		now := time.Now()
		for _, s := range streams {
			_ = s.SetReadDeadline(now) // the handler stops reading and says goodbye
		}
		c.cancel()
		c.wg.Wait()
		_ = c.sub.Close()
	})
}

// eventLoop turns connectedness changes and dialer retries of the partner
// into user events and wakes the send loop.
func (c *chat) eventLoop() {
	defer c.wg.Done()
	for {
		var e any
		var ok bool
		select {
		case <-c.ctx.Done():
			return
		case e, ok = <-c.sub.Out():
			if !ok {
				return
			}
		}
		switch e := e.(type) {
		case event.EvtPeerConnectednessChanged:
			if e.Peer != c.currentPartner() {
				continue
			}
			switch e.Connectedness {
			case network.Connected:
				c.showConnected(e.Peer, true)
				c.signal()
			case network.NotConnected:
				c.showConnected(e.Peer, false)
			}
		case dialer.EvtConnectRetry:
			if e.Peer == c.currentPartner() {
				c.opts.emit(evtReconnectScheduled{Peer: e.Peer, Attempt: e.Attempt, Delay: e.Delay, Err: e.Err})
			}
		}
	}
}

// sendLoop keeps one outgoing stream to the partner open while it is
// connected and pushes the outbox through it.
func (c *chat) sendLoop() {
	defer c.wg.Done()
	pause := time.Duration(0)
	for c.ctx.Err() == nil {
		p := c.currentPartner()
		if p == "" || !c.connected(p) {
			select {
			case <-c.ctx.Done():
				return
			case <-c.wake:
			}
			continue
		}
		start := time.Now()
		err := c.runOutbound(p)
		if c.ctx.Err() != nil {
			return
		}
		log.Debugw("outgoing stream ended", "peer", p, "err", err)
		if time.Since(start) >= healthyStream {
			pause = 0
		} else {
			pause = min(max(2*pause, minStreamPause), maxStreamPause)
		}
		t := time.NewTimer(pause)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (c *chat) setLinkUp(p peer.ID, up bool) {
	c.mu.Lock()
	c.linkUp = up && c.partner == p
	c.mu.Unlock()
}

// runOutbound opens a stream to p, sends hello and then every unacknowledged
// message from the oldest on, and follows the outbox until the stream breaks
// or the chat closes; then it half-closes and waits (bounded) for the
// partner's last acknowledgements.
func (c *chat) runOutbound(p peer.ID) error {
	ctx, cancel := context.WithTimeout(network.WithNoDial(c.ctx, "chat: the dialer keeps the partner connected"), streamOpenTimeout)
	s, err := c.h.NewStream(ctx, p, protocolID)
	cancel()
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	_ = s.SetWriteDeadline(time.Now().Add(c.opts.writeTimeout))
	if err := writeFrame(s, frame{Type: frameHello, Session: c.session, Version: protocolVersion}); err != nil {
		_ = s.Reset()
		return fmt.Errorf("write hello: %w", err)
	}
	dead := make(chan struct{})
	var readErr error
	go func() {
		defer close(dead)
		readErr = c.readAcks(s)
	}()
	c.setLinkUp(p, true)

	var sent uint64 // highest seq written to this stream
	for err == nil {
		m, ok, changed := c.out.after(sent)
		if !ok {
			select {
			case <-changed:
				if c.currentPartner() != p {
					err = errors.New("partner changed")
				}
				continue
			case <-dead:
				err = fmt.Errorf("partner ended the stream: %w", readErr)
			case <-c.ctx.Done():
				err = errClosed
			}
			break
		}
		_ = s.SetWriteDeadline(time.Now().Add(c.opts.writeTimeout))
		if werr := writeFrame(s, frame{Type: frameMsg, Session: c.session, Seq: m.Seq, Time: m.Time.UnixMilli(), Text: m.Text}); werr != nil {
			err = fmt.Errorf("write message %d: %w", m.Seq, werr)
			break
		}
		sent = m.Seq
	}
	c.setLinkUp(p, false)

	_ = s.CloseWrite()
	t := time.NewTimer(c.opts.closeTimeout)
	select {
	case <-dead:
	case <-t.C:
	}
	t.Stop()
	select {
	case <-dead:
		if readErr == nil {
			_ = s.Close()
			return err
		}
	default:
	}
	_ = s.Reset()
	<-dead
	return err
}

// readAcks applies the partner's acknowledgements until the stream ends; nil
// at a clean end.
func (c *chat) readAcks(s network.Stream) error {
	r := newFrameReader(s)
	for {
		f, err := r.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if f.Type != frameAck {
			continue
		}
		var seqs []uint64
		for _, m := range c.out.ack(f.Session, f.Seq) {
			if m.Pending {
				seqs = append(seqs, m.Seq)
			}
		}
		if len(seqs) > 0 {
			c.opts.emit(evtMessagesDelivered{Seqs: seqs})
		}
	}
}

// admit decides whether from may chat and, if so, registers s as an inbound
// stream (and the handler with the wait group). The first peer is adopted as
// partner; with allowNewPartner, an adopted (not fixed) partner that is not
// connected is replaced.
func (c *chat) admit(from peer.ID, s network.Stream) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	old := c.partner
	switch {
	case old == from:
	case old == "" || (c.opts.allowNewPartner && !c.fixed && !c.connected(old)):
		c.partner = from
		c.switchPartnerLocked(old, peer.AddrInfo{ID: from})
	default:
		c.mu.Unlock()
		c.opts.emit(evtPeerRejected{Peer: from, Partner: old})
		return false
	}
	c.inbound[s] = struct{}{}
	c.wg.Add(1)
	c.mu.Unlock()
	if old != from {
		c.opts.emit(evtPartnerChosen{Peer: from})
		c.showConnected(from, true)
		c.signal()
	}
	return true
}

// handleStream receives the partner's messages on s and acknowledges them.
func (c *chat) handleStream(s network.Stream) {
	from := s.Conn().RemotePeer()
	if !c.admit(from, s) {
		log.Debugw("refused chat stream", "peer", from)
		_ = s.Reset()
		return
	}
	defer c.wg.Done()
	defer func() {
		c.mu.Lock()
		delete(c.inbound, s)
		c.mu.Unlock()
	}()
	err := c.receive(from, s)
	if errors.Is(err, errBadFrame) || errors.Is(err, errFrameTooLong) {
		log.Infow("partner broke the chat protocol; stream reset", "peer", from, "err", err)
		_ = s.Reset()
		return
	}
	// Goodbye: half-close, so our acks are followed by EOF, and wait for the
	// partner to finish its side (it has then read every ack).
	_ = s.CloseWrite()
	_ = s.SetReadDeadline(time.Now().Add(c.opts.closeTimeout))
	if _, err := io.Copy(io.Discard, s); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// receive reads frames from s until it ends or fails (or close sets a read
// deadline), delivering new messages and acknowledging every message of a
// live session.
func (c *chat) receive(from peer.ID, s network.Stream) error {
	r := newFrameReader(s)
	for {
		f, err := r.next()
		if err != nil {
			return err
		}
		var v verdict
		switch f.Type {
		case frameHello:
			if f.Version != protocolVersion {
				log.Debugw("partner speaks another protocol version", "peer", from, "version", f.Version)
			}
			v = c.in.hello(from, f.Session)
		case frameMsg:
			v = c.in.accept(from, f.Session, f.Seq, func() {
				c.opts.emit(evtMessageReceived{From: from, Seq: f.Seq, Time: time.UnixMilli(f.Time), Text: f.Text})
			})
		default:
			continue // unknown frame types are ignored
		}
		if v.restarted {
			c.opts.emit(evtPartnerRestarted{Peer: from})
		}
		if v.ack == 0 || (c.opts.holdAcks != nil && c.opts.holdAcks()) {
			continue
		}
		_ = s.SetWriteDeadline(time.Now().Add(c.opts.writeTimeout))
		if err := writeFrame(s, frame{Type: frameAck, Session: f.Session, Seq: v.ack}); err != nil {
			return fmt.Errorf("write ack: %w", err)
		}
	}
}
