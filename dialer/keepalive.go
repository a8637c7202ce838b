package dialer

import (
	"context"
	"maps"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// roundGap is the wait between two reconnect rounds of a kept peer: the
// profile's MaxDelay, spread by ±JitterFactor/2 whatever its jitter strategy
// (full or decorrelated jitter would make it anything from 0 or InitialDelay
// up), and at least minRoundGap.
func roundGap(cfg resilience.RetryConfig) time.Duration {
	cfg.Jitter = resilience.JitterProportional
	return max(cfg.Delay(math.MaxUint32, 0), minRoundGap)
}

// minRoundGap is the least time between two reconnect rounds of a kept peer, so
// a profile with MaxDelay 0 cannot make the Host spin.
const minRoundGap = 100 * time.Millisecond

// keptPeer is a peer the Host keeps connected, with the goroutine that does it.
type keptPeer struct {
	id     peer.ID
	addrs  []ma.Multiaddr // Host.mu; replaced, never modified in place
	wake   chan struct{}  // capacity 1: a pending "check the connection"
	ctx    context.Context
	cancel context.CancelFunc

	// Used only by the peer's goroutine.
	lastUp time.Time // when the goroutine last got the peer connected
	flaps  uint32    // reconnects in a row whose connection died soon
}

// signal asks the peer's goroutine to check the connection; it never blocks.
func (kp *keptPeer) signal() {
	select {
	case kp.wake <- struct{}{}:
	default: // a check is already pending
	}
}

// KeepConnected makes the Host keep a connection to pi: it connects now if
// needed, and whenever the peer's last connection closes, a goroutine owned by
// the Host reconnects it with the peer's profile (see Profile). When a round ends
// without a connection (exhausted or permanent error), a new round starts after
// the profile's MaxDelay (± JitterFactor/2, at least 100ms), until
// Forget(pi.ID) or Close. If a connection the goroutine made dies within the
// profile's MaxDelay (a peer that accepts and then drops us), the next reconnect
// waits like a retry, growing with each such flap in a row, instead of starting
// at once. Reconnect dials have resilience.PriorityKept at the Host's dial gate
// (below bootstrap peers, above everything else). Calling it again for a kept peer adds pi.Addrs to the
// addresses used. An empty pi.ID is logged and ignored; after Close it does
// nothing.
func (h *Host) KeepConnected(pi peer.AddrInfo) {
	if pi.ID == "" {
		log.Errorw("KeepConnected: pi.ID is empty; ignored")
		return
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	kept := *h.kept.Load()
	kp := kept[pi.ID]
	if kp != nil {
		kp.addrs = mergeAddrs(kp.addrs, pi.Addrs)
	} else {
		ctx, cancel := context.WithCancel(h.ctx)
		kp = &keptPeer{id: pi.ID, addrs: mergeAddrs(nil, pi.Addrs), wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
		next := maps.Clone(kept)
		next[pi.ID] = kp
		h.kept.Store(&next)
		h.wg.Add(1)
		go h.keepAlive(kp)
	}
	h.mu.Unlock()
	kp.signal()
}

// Forget stops keeping id connected; a reconnect in progress stops. The
// connection itself, if any, stays open.
func (h *Host) Forget(id peer.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := *h.kept.Load()
	kp := kept[id]
	if kp == nil {
		return
	}
	next := maps.Clone(kept)
	delete(next, id)
	h.kept.Store(&next)
	kp.cancel()
}

// Kept reports whether id is kept connected (KeepConnected without Forget).
func (h *Host) Kept(id peer.ID) bool {
	_, ok := (*h.kept.Load())[id]
	return ok
}

func (h *Host) keepAlive(kp *keptPeer) {
	defer h.wg.Done()
	defer kp.cancel()
	for {
		select {
		case <-kp.ctx.Done():
			return
		case <-kp.wake:
		}
		h.reconnect(kp)
	}
}

// reconnect runs rounds until kp is connected or forgotten.
func (h *Host) reconnect(kp *keptPeer) {
	if h.connected(kp.id) {
		return
	}
	log.Debugw("reconnecting kept peer", "peer", kp.id)
	if h.cfg.tracer != nil {
		h.cfg.tracer.ReconnectStarted()
	}
	if !h.waitOutFlap(kp) {
		return
	}
	for {
		h.mu.Lock()
		pi := peer.AddrInfo{ID: kp.id, Addrs: kp.addrs}
		h.mu.Unlock()
		_, err := h.request(kp.ctx, pi, request{prio: resilience.PriorityKept}, "KeepConnected")
		if err == nil || (kp.ctx.Err() == nil && h.connected(kp.id)) {
			kp.lastUp = time.Now()
			log.Debugw("kept peer reconnected", "peer", kp.id)
			if h.cfg.tracer != nil {
				h.cfg.tracer.ReconnectSucceeded()
			}
			return
		}
		if kp.ctx.Err() != nil {
			return
		}
		if h.cfg.tracer != nil {
			h.cfg.tracer.ReconnectRoundFailed()
		}
		wait := roundGap(h.Profile(kp.id))
		log.Debugw("reconnect round failed", "peer", kp.id, "err", err, "next_round_in", wait)
		if resilience.Sleep(kp.ctx, wait) != nil {
			return
		}
		if h.connected(kp.id) { // the peer dialed us meanwhile
			if h.cfg.tracer != nil {
				h.cfg.tracer.ReconnectSucceeded()
			}
			return
		}
	}
}

// waitOutFlap delays a reconnect whose previous connection, made by this
// goroutine, died within the profile's MaxDelay: a peer that accepts and then
// drops us (its gater refusing us after the handshake, a crash loop) would
// otherwise be redialed at once, forever. The wait grows with each flap in a row
// like the profile's retry delays. It reports false if kp was forgotten meanwhile.
func (h *Host) waitOutFlap(kp *keptPeer) bool {
	cfg := h.Profile(kp.id)
	if kp.lastUp.IsZero() || time.Since(kp.lastUp) >= max(cfg.MaxDelay, minRoundGap) {
		kp.flaps = 0
		return true
	}
	kp.flaps++
	wait := max(cfg.Delay(kp.flaps, 0), minRoundGap)
	log.Debugw("kept peer dropped soon after reconnecting; waiting", "peer", kp.id, "flaps", kp.flaps, "wait", wait)
	if resilience.Sleep(kp.ctx, wait) != nil {
		return false
	}
	return true
}
