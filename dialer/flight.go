package dialer

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// errAbandoned is the cause with which a round is stopped when its last caller left.
var errAbandoned = errors.New("dialer: every caller of the round left")

// A flight is one retry round for one peer, shared by every Connect call for that
// peer while it runs (singleflight). Callers wait for done or their own ctx;
// the round's ctx is its own, so one caller leaving does not stop it.
//
//	Connect ─┐ join            ┌─ RetryTracked(tracker, dial) ─▶ done (err)
//	Connect ─┼──────▶ flight ──┤
//	Connect ─┘ leave (ctx end) └─ last caller left: cancel(errAbandoned)
//
// The fields marked "h.mu" are guarded by the Host's mutex.
type flight struct {
	id     peer.ID
	ctx    context.Context
	cancel context.CancelCauseFunc
	cfg    resilience.RetryConfig
	slots  chan struct{} // non-nil: each dial first takes a slot (a send) of it
	prev   *flight       // an abandoned round for the same peer that must end first
	done   chan struct{}
	err    error // written before done is closed

	addrs     []ma.Multiaddr // h.mu; replaced, never modified in place
	waiters   int            // h.mu
	abandoned bool           // h.mu
	finished  bool           // h.mu
}

// connect joins (or starts) the peer's round and waits for it or for ctx.
// cfg overrides the peer's profile for a round it starts; slots, if not nil,
// bounds the dials of a round it starts (see ConnectLimited).
func (h *Host) connect(ctx context.Context, pi peer.AddrInfo, cfg *resilience.RetryConfig, slots chan struct{}) error {
	if err := h.precheck(ctx, pi, "Connect"); err != nil {
		return err
	}
	if h.connectedFor(ctx, pi.ID) {
		return h.inner.Connect(ctx, pi) // returns at once; absorbs pi.Addrs
	}
	h.addAddrs(pi)
	f, err := h.join(ctx, pi, cfg, slots)
	if err != nil {
		return err
	}
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		h.leave(f)
		cause := context.Cause(ctx)
		if t, ok := h.mgr.Get(h.keys.key(pi.ID)); ok && t.LastError != nil {
			return errors.Join(cause, t.LastError)
		}
		return cause
	}
}

func (h *Host) join(ctx context.Context, pi peer.AddrInfo, cfg *resilience.RetryConfig, slots chan struct{}) (*flight, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	prev := h.flights[pi.ID]
	if prev != nil && !prev.abandoned {
		prev.waiters++
		if len(pi.Addrs) > 0 {
			prev.addrs = mergeAddrs(prev.addrs, pi.Addrs)
		}
		if h.cfg.tracer != nil {
			h.cfg.tracer.ConnectJoined()
		}
		return prev, nil
	}
	profile := h.profileLocked(pi.ID)
	if cfg != nil {
		profile = *cfg
	}
	// The round keeps the first caller's context values but not its deadline or
	// cancellation: it ends when its last caller leaves or the Host closes.
	fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	f := &flight{
		id:      pi.ID,
		ctx:     fctx,
		cancel:  cancel,
		cfg:     profile,
		slots:   slots,
		prev:    prev,
		done:    make(chan struct{}),
		addrs:   mergeAddrs(nil, pi.Addrs),
		waiters: 1,
	}
	h.flights[pi.ID] = f
	h.wg.Add(1)
	go h.run(f)
	return f, nil
}

// leave removes one waiting caller; the last one to leave stops the round.
func (h *Host) leave(f *flight) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.waiters--
	if f.waiters == 0 && !f.finished {
		f.abandoned = true
		f.cancel(errAbandoned)
	}
}

func (h *Host) run(f *flight) {
	defer h.wg.Done()
	if f.prev != nil {
		// Two rounds on one tracker would garble its state; the abandoned one
		// ends promptly since its ctx is cancelled.
		select {
		case <-f.prev.done:
		case <-f.ctx.Done():
		}
	}
	var err error
	if f.ctx.Err() != nil {
		err = context.Cause(f.ctx)
	} else {
		err = h.round(f)
	}
	h.mu.Lock()
	f.finished = true
	f.err = err
	if h.flights[f.id] == f {
		delete(h.flights, f.id)
	}
	f.prev = nil
	h.mu.Unlock()
	f.cancel(nil)
	close(f.done)
}

// round runs the retry loop of f on the peer's tracker.
func (h *Host) round(f *flight) error {
	id := h.keys.key(f.id)
	h.prepareTracker(f.id, f.cfg)
	op := func(ctx context.Context) (struct{}, error) {
		h.mu.Lock()
		pi := peer.AddrInfo{ID: f.id, Addrs: f.addrs}
		h.mu.Unlock()
		return struct{}{}, h.dial(ctx, pi)
	}
	var opts []resilience.RetryOption
	if h.cfg.retryOptions != nil {
		opts = append(opts, h.cfg.retryOptions(f.id)...) // first: the Host's own win
	}
	opts = append(opts, resilience.OnRetry(func(attempt uint32, err error, delay time.Duration) {
		log.Debugw("dial failed, retrying", "peer", f.id, "attempt", attempt, "err", err, "delay", delay)
		h.events.notify(EvtConnectRetry{Peer: f.id, Attempt: attempt, Err: err, Delay: delay})
	}))
	if h.cfg.retryTracer != nil {
		opts = append(opts, resilience.WithRetryMetrics(h.cfg.retryTracer))
	}
	if f.slots != nil {
		opts = append(opts, resilience.WithGuards(slotGuard(f.slots)))
	}
	_, err := resilience.RetryTracked(f.ctx, h.mgr.Tracked(id), op, opts...)
	switch {
	case err == nil:
		log.Debugw("connected", "peer", f.id)
	case f.ctx.Err() != nil:
		// RetryTracked already moved the tracker to Idle.
	default:
		log.Debugw("round failed", "peer", f.id, "err", err)
	}
	return err
}

// slotGuard makes each attempt of a round take a slot of a semaphore (a send
// takes one, a receive frees it) before it is recorded and dialled, and free it
// when the attempt ended: a round waiting for its next attempt holds no slot.
type slotGuard chan struct{}

func (g slotGuard) Before(ctx context.Context, _ uint32) error {
	select {
	case g <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (g slotGuard) After(uint32, error) { <-g }
