package dialer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// errAbandoned is the cause with which a run is stopped when its last caller left.
var errAbandoned = errors.New("dialer: every caller of the round left")

// The dial scheduler: the one owner of each peer's outbound dials. Every
// request — Connect and Dial (a retry round), ConnectOnce (a probe: one dial),
// keep-alive reconnects, package bootstrap's rounds — goes to the peer's
// worker, a goroutine that exists while someone waits for the peer. The worker
// alone writes the peer's tracker, makes at most one dial at a time, and takes a
// slot of the Host's priority gate for each dial.
//
//	Connect / Dial ─┐ round waiters             ┌─ round: RetryTracked(tracker, dial),
//	keep-alive ─────┼──────▶ worker (per peer) ─┤   its wait cut short by a kick
//	ConnectOnce ────┘ probe waiters             └─ probe: one dial, never leaves
//	        kick: Dial(Immediately()), a probe,      Retrying behind it
//	        WakeRounds, an inbound connection        │ each dial: gate slot (priority),
//	                                                 ▼ per-IP rate limit, classify
//
// A round's waiters get the round's result; a probe's waiters get the result
// of the next dial the worker makes (a round's or a probe's), so a probe to a
// peer whose round waits out its backoff kicks the round instead of dialling
// beside it. A run (round or probe) ends when its waiters all left; the worker
// then starts the next run for callers that came meanwhile, or exits.

// peerDials is the scheduler's state for one peer. The fields marked h.mu are
// guarded by the Host's mutex; the others are set when the worker starts.
type peerDials struct {
	id   peer.ID
	kick chan struct{} // capacity 1: a pending "dial now" for a waiting round

	addrs  []ma.Multiaddr          // h.mu; replaced, never modified in place
	cfg    *resilience.RetryConfig // h.mu; profile asked for by the first round waiter, nil = the peer's
	vals   context.Context         // h.mu; the first waiter's context values
	rounds map[*waiter]struct{}    // h.mu; waiting for the round's end
	probes map[*waiter]struct{}    // h.mu; waiting for the next dial's end
	run    *run                    // h.mu; the run in progress, nil between runs
	dials  uint32                  // h.mu; dials the worker made
	// batch holds the probes the last dial answers, once its result (batchErr)
	// is recorded in the tracker. h.mu.
	batch    map[*waiter]struct{}
	batchErr error
	waiting  bool // h.mu; a round waits out its backoff
}

// run is one round or probe of a worker.
type run struct {
	round     bool
	ctx       context.Context
	cancel    context.CancelCauseFunc
	abandoned bool // h.mu: its waiters all left; its result goes to nobody
}

// waiter is one caller of Dial, Connect or ConnectOnce.
type waiter struct {
	done  chan struct{} // closed once err is set
	err   error
	dials uint32 // the worker's dial count when the caller joined, then the count it saw
	prio  resilience.Priority
}

// request is what a caller asks of the scheduler.
type request struct {
	probe bool                    // one dial, not a round
	cfg   *resilience.RetryConfig // round profile; nil = the peer's
	prio  resilience.Priority
	now   bool // kick a round waiting out its backoff
}

// DialOption adjusts one Dial request.
type DialOption func(*request) error

// WithRoundConfig makes cfg the profile of the round the request starts (a
// request that joins a round already running uses that round's profile).
// Default: the peer's profile (see Host.Profile).
func WithRoundConfig(cfg resilience.RetryConfig) DialOption {
	return func(r *request) error {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("dialer: WithRoundConfig: %w", err)
		}
		r.cfg = &cfg
		return nil
	}
}

// WithPriority sets the priority of the request's dials at the Host's dial
// gate. Default: resilience.PriorityBootstrap for bootstrap peers,
// resilience.PriorityKept for kept peers, resilience.PriorityOther otherwise.
// A round dials at the highest priority any of its callers asked for.
func WithPriority(p resilience.Priority) DialOption {
	return func(r *request) error {
		if p > resilience.PriorityBootstrap {
			return fmt.Errorf("dialer: WithPriority(%v): not one of the resilience.Priority constants", p)
		}
		r.prio = p
		return nil
	}
}

// Immediately makes a request that joins a round waiting out its backoff cut
// the wait short: the round dials at once.
func Immediately() DialOption {
	return func(r *request) error {
		r.now = true
		return nil
	}
}

// Dial connects to pi as Connect does and also reports how many dials the
// peer's round made while the call waited for it (0 when the peer was already
// connected). Options choose the round's profile, the dials' priority and
// whether a waiting round dials at once.
func (h *Host) Dial(ctx context.Context, pi peer.AddrInfo, opts ...DialOption) (dials uint32, err error) {
	req := request{prio: h.defaultPriority(pi.ID)}
	for i, o := range opts {
		if o == nil {
			return 0, fmt.Errorf("dialer: Dial: opts[%d] is nil", i)
		}
		if err := o(&req); err != nil {
			return 0, err
		}
	}
	return h.request(ctx, pi, req, "Dial")
}

// request hands req to pi's worker and waits for its answer or for ctx.
func (h *Host) request(ctx context.Context, pi peer.AddrInfo, req request, op string) (uint32, error) {
	if err := h.precheck(ctx, pi, op); err != nil {
		return 0, err
	}
	if h.connectedFor(ctx, pi.ID) {
		return 0, h.inner.Connect(ctx, pi) // returns at once; absorbs pi.Addrs
	}
	h.addAddrs(pi)
	p, w, err := h.join(ctx, pi, req)
	if err != nil {
		return 0, err
	}
	select {
	case <-w.done:
		return w.dials, w.err
	case <-ctx.Done():
		dials := h.leave(p, w)
		cause := context.Cause(ctx)
		if t, ok := h.mgr.Get(h.keys.key(pi.ID)); ok && t.LastError != nil {
			return dials, errors.Join(cause, t.LastError)
		}
		return dials, cause
	}
}

// join registers a waiter with pi's worker, starting the worker if there is none.
func (h *Host) join(ctx context.Context, pi peer.AddrInfo, req request) (*peerDials, *waiter, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, ErrClosed
	}
	p := h.peers[pi.ID]
	if p == nil {
		p = &peerDials{
			id:     pi.ID,
			kick:   make(chan struct{}, 1),
			rounds: make(map[*waiter]struct{}),
			probes: make(map[*waiter]struct{}),
			vals:   context.WithoutCancel(ctx),
		}
		h.peers[pi.ID] = p
		h.wg.Add(1)
		go h.work(p)
	} else if h.cfg.tracer != nil {
		h.cfg.tracer.ConnectJoined()
	}
	if len(pi.Addrs) > 0 {
		p.addrs = mergeAddrs(p.addrs, pi.Addrs)
	}
	w := &waiter{done: make(chan struct{}), dials: p.dials, prio: req.prio}
	if req.probe {
		p.probes[w] = struct{}{}
	} else {
		if len(p.rounds) == 0 && p.cfg == nil && req.cfg != nil && (p.run == nil || !p.run.round) {
			p.cfg = req.cfg
		}
		p.rounds[w] = struct{}{}
	}
	if (req.now || req.probe) && p.waiting {
		p.signal()
	}
	return p, w, nil
}

// leave removes a waiter whose ctx ended; the last one to leave stops the run.
// It returns the dials the worker made while the waiter waited.
func (h *Host) leave(p *peerDials, w *waiter) uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-w.done: // answered as its ctx ended: w.dials is its count already
		return w.dials
	default:
	}
	delete(p.rounds, w)
	delete(p.probes, w)
	if len(p.rounds) == 0 && len(p.probes) == 0 && p.run != nil && !p.run.abandoned {
		p.run.abandoned = true
		p.run.cancel(errAbandoned)
	}
	return p.dials - w.dials
}

// waitersPriority is the highest priority of the waiters. h.mu must be held.
func (p *peerDials) waitersPriority() resilience.Priority {
	prio := resilience.PriorityOther
	for w := range p.rounds {
		prio = max(prio, w.prio)
	}
	for w := range p.probes {
		prio = max(prio, w.prio)
	}
	return prio
}

func (p *peerDials) signal() {
	select {
	case p.kick <- struct{}{}:
	default: // a kick is already pending
	}
}

// WakeRounds makes every round that waits out its backoff dial at once, and
// returns how many it woke. Call it on evidence that the network is back (a
// network-change signal, a new connection); the Host calls it itself when a
// probe succeeds and when an inbound connection arrives.
func (h *Host) WakeRounds() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, p := range h.peers {
		if p.waiting {
			p.signal()
			n++
		}
	}
	if n > 0 {
		log.Debugw("woke waiting rounds", "rounds", n)
	}
	return n
}

// work is the worker of one peer: it runs rounds and probes while anyone
// waits for them.
func (h *Host) work(p *peerDials) {
	defer h.wg.Done()
	for {
		h.mu.Lock()
		if h.closed {
			h.finishLocked(p, p.rounds, ErrClosed)
			h.finishLocked(p, p.probes, ErrClosed)
		}
		if len(p.rounds) == 0 && len(p.probes) == 0 {
			delete(h.peers, p.id)
			h.mu.Unlock()
			return
		}
		ctx, cancel := context.WithCancelCause(p.vals)
		r := &run{round: len(p.rounds) > 0, ctx: ctx, cancel: cancel}
		p.run = r
		cfg := h.profileLocked(p.id)
		if p.cfg != nil {
			cfg = *p.cfg
		}
		p.cfg = nil
		h.mu.Unlock()
		stop := context.AfterFunc(h.ctx, func() { cancel(ErrClosed) })

		var err error
		switch {
		case h.connectedFor(ctx, p.id):
			// Connected meanwhile (the peer dialled us, or another dial
			// through the wrapped host won): nothing to do.
		case r.round:
			err = h.round(p, r, cfg)
		default:
			err = h.probe(p, r, cfg)
		}
		stop()
		cancel(nil)

		h.mu.Lock()
		p.run, p.waiting = nil, false
		h.answerLocked(p)
		if !r.abandoned && (r.round || err == nil) {
			// A probe run that failed leaves the round waiters for a round.
			h.finishLocked(p, p.rounds, err)
		}
		if err == nil {
			h.finishLocked(p, p.probes, nil) // connected: no dial needed
		}
		h.mu.Unlock()
	}
}

// answerLocked answers the probes waiting for the last dial, once its result
// is in the tracker. h.mu must be held.
func (h *Host) answerLocked(p *peerDials) {
	if p.batch != nil {
		h.finishLocked(p, p.batch, p.batchErr)
		p.batch, p.batchErr = nil, nil
	}
}

// finishLocked answers the waiters ws with err. h.mu must be held.
func (h *Host) finishLocked(p *peerDials, ws map[*waiter]struct{}, err error) {
	for w := range ws {
		w.err = err
		w.dials = p.dials - w.dials
		close(w.done)
		delete(ws, w)
	}
}

// round runs a retry round with profile cfg on the peer's tracker.
func (h *Host) round(p *peerDials, r *run, cfg resilience.RetryConfig) error {
	id := h.keys.key(p.id)
	h.mgr.Modify(id, func(t *resilience.ConnectionTracker) {
		t.Config = cfg
		if leftByFailedRound(t) {
			t.Reset() // a new round: Failed, Exhausted and stale failures start over
		}
	})
	var opts []resilience.RetryOption
	if h.cfg.retryOptions != nil {
		opts = append(opts, h.cfg.retryOptions(p.id)...) // first: the Host's own win
	}
	opts = append(opts,
		resilience.WakeOn(p.kick),
		resilience.OnRetry(func(attempt uint32, err error, delay time.Duration) {
			h.mu.Lock()
			p.waiting = true
			h.answerLocked(p) // the failure is recorded now
			h.mu.Unlock()
			log.Debugw("dial failed, retrying", "peer", p.id, "attempt", attempt, "err", err, "delay", delay)
			h.events.notify(EvtConnectRetry{Peer: p.id, Attempt: attempt, Err: err, Delay: delay})
		}))
	if h.cfg.retryTracer != nil {
		opts = append(opts, resilience.WithRetryMetrics(h.cfg.retryTracer))
	}
	_, err := resilience.RetryTracked(r.ctx, h.mgr.Tracked(id), func(ctx context.Context) (struct{}, error) {
		return struct{}{}, h.attempt(ctx, p, false)
	}, opts...)
	switch {
	case err == nil:
		log.Debugw("connected", "peer", p.id)
	case r.ctx.Err() != nil:
		// RetryTracked left the tracker Idle (or the attempt's canceled).
	default:
		log.Debugw("round failed", "peer", p.id, "err", err)
	}
	return err
}

// probe makes one dial and records it without scheduling anything: a failure
// leaves the tracker Idle (or Failed, Exhausted), never Retrying.
func (h *Host) probe(p *peerDials, r *run, cfg resilience.RetryConfig) error {
	id := h.keys.key(p.id)
	// A new tracker gets the peer's profile; an existing one keeps its config.
	if _, err := h.mgr.GetOrCreateWithConfig(id, cfg); err != nil {
		return err // cannot happen: profiles are validated when set
	}
	h.mgr.RecordAttempt(id)
	err := h.attempt(r.ctx, p, true)
	switch {
	case err == nil:
		h.mgr.RecordSuccess(id)
		h.WakeRounds() // evidence: the network works
		return nil
	case r.ctx.Err() != nil:
		h.mgr.ModifyExisting(id, (*resilience.ConnectionTracker).RecordCanceled)
		return errors.Join(context.Cause(r.ctx), err)
	default:
		h.mgr.Modify(id, func(t *resilience.ConnectionTracker) {
			t.RecordFailure(err)
			t.RecordStopped() // nothing is scheduled: Retrying becomes Idle
		})
		h.mu.Lock()
		h.answerLocked(p)
		h.mu.Unlock()
		return err
	}
}

// attempt is one dial of the worker: it waits for the peer's IP addresses to
// have room under the connection rate limit (a probe also for the reserve it
// leaves to the fan-out after it), takes a slot of the dial gate,
// dials, and answers the probe waiters. A refusal by the rate limit is no
// attempt: it waits and dials again.
func (h *Host) attempt(ctx context.Context, p *peerDials, probe bool) error {
	select { // a kick that came while the round was not waiting is spent
	case <-p.kick:
	default:
	}
	h.mu.Lock()
	p.waiting = false
	prio := p.waitersPriority() // a round dials at the highest priority asked for
	h.mu.Unlock()
	for {
		h.mu.Lock()
		pi := peer.AddrInfo{ID: p.id, Addrs: p.addrs}
		h.mu.Unlock()
		reserve := 0
		if probe {
			reserve = h.ipLimit.probeReserve()
		}
		limited := pi.Addrs // what the swarm will dial: the callers' addresses, else the peerstore's
		if len(limited) == 0 && h.ipLimit != nil {
			limited = h.inner.Peerstore().Addrs(p.id)
		}
		if err := h.ipLimit.wait(ctx, limited, reserve); err != nil {
			return err
		}
		if err := h.gate.Acquire(ctx, prio); err != nil {
			return err
		}
		err := h.dial(ctx, pi)
		h.gate.Release()
		if Classify(err) == ClassRateLimited && ctx.Err() == nil {
			log.Debugw("dial refused by the connection rate limit; waiting, not counted", "peer", p.id, "err", err)
			if !h.ipLimit.refused(limited) {
				if err := resilience.Sleep(ctx, h.rateLimitPause()); err != nil {
					return err
				}
			}
			continue
		}
		h.mu.Lock()
		p.dials++
		if err == nil || ctx.Err() == nil {
			// The probes waiting now are answered by this dial, once it is
			// recorded; a dial cut short leaves them for the next one.
			p.batch, p.batchErr = p.probes, err
			p.probes = make(map[*waiter]struct{})
		}
		h.mu.Unlock()
		return err
	}
}

// rateLimitPause is how long a dial refused by the connection rate limit waits
// when the mirror cannot tell: one token at the configured rate.
func (h *Host) rateLimitPause() time.Duration {
	r := h.cfg.ipDialRate
	if r <= 0 {
		r = DefaultIPDialRate
	}
	return time.Duration(float64(time.Second) / r)
}

// defaultPriority is the gate priority of a request that does not set one.
func (h *Host) defaultPriority(id peer.ID) resilience.Priority {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.defaultPriorityLocked(id)
}

func (h *Host) defaultPriorityLocked(id peer.ID) resilience.Priority {
	if _, ok := h.bootstrap[id]; ok {
		return resilience.PriorityBootstrap
	}
	if _, ok := (*h.kept.Load())[id]; ok {
		return resilience.PriorityKept
	}
	return resilience.PriorityOther
}

// leftByFailedRound reports whether t is what a round that did not connect leaves
// behind: Failed, Exhausted, Retrying, or Idle with failures (a round whose
// callers all left, or failed probes).
func leftByFailedRound(t *resilience.ConnectionTracker) bool {
	switch t.State {
	case resilience.Failed, resilience.Exhausted, resilience.Retrying:
		return true
	case resilience.Idle:
		return t.ConsecutiveFailures > 0
	default:
		return false
	}
}
