package healthmon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// Recoverer is what the monitor drives while the node is not healthy.
// *bootstrap.Bootstrapper implements it. The monitor never runs two of its calls
// at the same time, and every call gets a context that ends at the call's timeout
// (WithProbeTimeout, WithRecoverTimeout), when a check finds the node healthy
// (a probe's also when other evidence arrives), or when the monitor closes.
type Recoverer interface {
	// Probe makes ONE connection attempt to the next candidate peer (rotating
	// over bootstrap and backup peers) and reports whether it succeeded.
	Probe(ctx context.Context) error
	// Recover re-dials every bootstrap and backup peer (resetting exhausted
	// trackers) and refreshes the routing table.
	Recover(ctx context.Context) error
}

// Trigger says why the monitor started a recovery.
type Trigger int

const (
	// TriggerProbe: a probe succeeded.
	TriggerProbe Trigger = iota + 1
	// TriggerConnection: a connection was established while no routing-table
	// peer was connected (an inbound connection, or a dial by anyone but a
	// Recover).
	TriggerConnection
)

// String returns "probe" or "connection".
func (t Trigger) String() string {
	switch t {
	case TriggerProbe:
		return "probe"
	case TriggerConnection:
		return "connection"
	default:
		return fmt.Sprintf("Trigger(%d)", int(t))
	}
}

// probeGrace is how long a probe in flight may still finish after evidence arrived.
const probeGrace = 500 * time.Millisecond

// recoverEcho is how long after a Recover returned a connection event for a peer
// that was already connected when it returned is taken for the Recover's own (the
// swarm emits connection events from a goroutine of its own, so they can trail the
// dials) and is no evidence.
const recoverEcho = 500 * time.Millisecond

type opKind int

const (
	opNone opKind = iota
	opProbe
	opRecover
)

type opResult struct {
	kind opKind
	err  error
}

// recovery is the recovery state machine. It is owned by the monitor's loop
// goroutine and not safe for concurrent use. It only decides; the loop runs the
// operations it starts (start) and feeds back results, observations and signals.
//
//	observed Healthy            -> idle: cancel a probe or Recover in flight, forget
//	                               everything but when the last probe started
//	observed not Healthy        -> active:
//	  evidence and gate open    -> Recover (one at a time; a probe in flight is cancelled first)
//	  no evidence, gate open    -> Probe, then wait: ProbeInterval after the first probe,
//	                               1.5x longer after each further failed one, up to
//	                               MaxProbeInterval (each ±10%): a long outage costs few
//	                               dials, and any signal or evidence snaps it back
//	evidence: a probe succeeded, or a connection appeared while Unhealthy that is
//	      not a Recover's own (none while a Recover runs, nor, within recoverEcho
//	      after it, one to a peer that was connected when it returned)
//	gate: after a Recover that left the node unhealthy, closed for RecoverBackoff,
//	      doubling up to MaxRecoverBackoff; not closed if a signal came during it
//	kernel link up / address added / default route back / wake from sleep, local
//	      address or reachability change: open the gate, snap the probe gap back to
//	      ProbeInterval, and probe at once — flapping is damped by counting: of the
//	      signals within one MaxProbeInterval, only the first signalBurst probe at
//	      once; the rest only snap the gap back
//
// Without signals, probe starts are at least ProbeInterval apart.
type recovery struct {
	probeInterval time.Duration
	probeGaps     resilience.RetryConfig // gap after failed probe n: ProbeInterval x 1.5^(n-1), capped
	recoverGate   resilience.RetryConfig // gate after failed Recover n: RecoverBackoff x 2^(n-1), capped
	rand          func() float64         // [0,1)

	active      bool
	observed    Status
	evidence    Trigger   // zero: none
	evidenceAt  time.Time // when evidence was found
	nextProbe   time.Time
	gateOpensAt time.Time // no Recover (and no Probe) before this
	failed      int       // recoveries in a row that left the node unhealthy
	misses      uint32    // failed probes since the outage began or the last signal
	lastSignal  time.Time // last network signal while active
	burstStart  time.Time // start of the current count of signals
	burst       int       // signals since burstStart

	// Kept by reset: they are about operations, not about one outage.
	lastProbe time.Time            // when the last probe started
	echo      map[peer.ID]struct{} // connected when the last Recover returned
	echoUntil time.Time            // their connection events before this are its own
	op        opKind               // in flight
	opStart   time.Time            // when the operation in flight started
	trigger   Trigger              // of the Recover in flight
}

func newRecovery(probeInterval, maxProbeInterval, backoffFirst, maxBackoff time.Duration) *recovery {
	return &recovery{
		probeInterval: probeInterval,
		probeGaps: resilience.RetryConfig{InitialDelay: probeInterval, MaxDelay: max(maxProbeInterval, probeInterval),
			BackoffMultiplier: probeGrowth, JitterFactor: 0.2},
		recoverGate: resilience.RetryConfig{InitialDelay: backoffFirst, MaxDelay: max(maxBackoff, backoffFirst),
			BackoffMultiplier: 2},
		rand: rand.Float64,
	}
}

// probeGrowth is how much longer the gap gets after each failed probe.
const probeGrowth = 1.5

// signalBurst is how many network signals within one MaxProbeInterval probe at
// once; further ones only snap the probe gap back.
const signalBurst = 3

// action is what step asks the loop to do.
type action struct {
	start   opKind  // opProbe or opRecover to start one; opNone otherwise
	trigger Trigger // for opRecover
	cancel  bool    // cancel the operation in flight
	wakeAt  time.Time
}

// observe feeds the status of a check.
func (r *recovery) observe(now time.Time, obs Status) {
	r.observed = obs
	switch {
	case obs == Healthy:
		if r.active {
			r.reset()
		}
		return
	case !r.active:
		r.active = true
		r.nextProbe = r.earliestProbe(now)
	}
}

// reset forgets the recovery state; an operation in flight stays recorded until it
// has finished, and the last probe's start keeps spacing probes.
func (r *recovery) reset() {
	*r = recovery{probeInterval: r.probeInterval, probeGaps: r.probeGaps, recoverGate: r.recoverGate, rand: r.rand,
		observed: Healthy, lastProbe: r.lastProbe, echo: r.echo, echoUntil: r.echoUntil, op: r.op, opStart: r.opStart, trigger: r.trigger}
}

// earliestProbe is the earliest time, at or after now, a probe may start: one
// probe interval after the last one.
func (r *recovery) earliestProbe(now time.Time) time.Time {
	if r.lastProbe.IsZero() {
		return now
	}
	return later(now, r.lastProbe.Add(r.probeInterval))
}

// connected records that a connection to p was established. Connections while a
// Recover runs, and the trailing events of those it left open, are its own dials
// and prove nothing new.
func (r *recovery) connected(now time.Time, p peer.ID) {
	if r.op == opRecover {
		return
	}
	if _, own := r.echo[p]; own && now.Before(r.echoUntil) {
		delete(r.echo, p) // one event per connection; a later one is new
		return
	}
	if r.active && r.observed == Unhealthy && r.evidence == 0 {
		r.evidence, r.evidenceAt = TriggerConnection, now
	}
}

// networkChanged records a local network change that may have brought the network
// back (kernel link up, address added, default route back, wake from sleep, local
// addresses or reachability changed): it opens the gate, snaps the probe gap back
// to ProbeInterval and, unless signalBurst signals came within the last
// MaxProbeInterval (a flapping link), brings the next probe forward to now. It
// reports whether the change moved the next probe.
func (r *recovery) networkChanged(now time.Time) bool {
	if now.Sub(r.burstStart) > r.probeGaps.MaxDelay {
		r.burstStart, r.burst = now, 0
	}
	r.burst++
	if !r.active {
		return false
	}
	r.lastSignal = now
	r.gateOpensAt = now
	r.misses = 0
	at := r.earliestProbe(now)
	if r.burst <= signalBurst {
		at = now
	}
	if at.Before(r.nextProbe) {
		r.nextProbe = at
		return true
	}
	return false
}

// finished records the end of the operation in flight; connected lists the
// peers connected at its end (only used after a Recover).
func (r *recovery) finished(now time.Time, res opResult, connected []peer.ID) {
	started := r.opStart
	r.op, r.opStart = opNone, time.Time{}
	switch res.kind {
	case opProbe:
		// A successful probe's own connection usually shows up first: credit the probe.
		if res.err == nil && r.active {
			r.evidence, r.evidenceAt = TriggerProbe, now
		} else if res.err != nil {
			r.misses++
		}
	case opRecover:
		r.trigger = 0
		r.echo, r.echoUntil = make(map[peer.ID]struct{}, len(connected)), now.Add(recoverEcho)
		for _, p := range connected {
			r.echo[p] = struct{}{}
		}
		// Not healthy yet (observe may still reset us): back off, unless the
		// network changed after the Recover started; it may have worked on the
		// old one.
		if r.active && !r.lastSignal.After(started) {
			r.failed++
			r.gateOpensAt = now.Add(r.backoff())
		}
	}
}

// backoff is the gate time after r.failed unsuccessful recoveries.
func (r *recovery) backoff() time.Duration {
	return r.recoverGate.Delay(uint32(r.failed), 0)
}

// probeGap is the wait after a probe start: ProbeInterval while no probe has
// failed yet, growing by probeGrowth with each failed one up to
// MaxProbeInterval, ±10%.
func (r *recovery) probeGap() time.Duration {
	return r.probeGaps.DelayWithRandom(r.misses+1, 0, r.rand())
}

// step decides what to do at now.
func (r *recovery) step(now time.Time) action {
	if !r.active {
		// Healthy: a probe is pointless and a Recover would go on dialing (dead)
		// peers; end either, so a new outage finds the way free.
		return action{cancel: r.op != opNone}
	}
	gateOpen := !now.Before(r.gateOpensAt)
	if r.op != opNone {
		// One operation at a time. Evidence makes a probe pointless: cancel it and
		// recover when it has returned, unless it returns within probeGrace (the
		// evidence may be the probe's own connection, completing its handshake).
		if r.op == opProbe && r.evidence != 0 && gateOpen {
			if cancelAt := r.evidenceAt.Add(probeGrace); now.Before(cancelAt) {
				return action{wakeAt: cancelAt}
			}
			return action{cancel: true}
		}
		return action{}
	}
	if !gateOpen {
		return action{wakeAt: r.gateOpensAt}
	}
	if r.evidence != 0 {
		a := action{start: opRecover, trigger: r.evidence}
		r.op, r.opStart, r.trigger, r.evidence = opRecover, now, r.evidence, 0
		return a
	}
	if now.Before(r.nextProbe) {
		return action{wakeAt: r.nextProbe}
	}
	r.op, r.opStart, r.lastProbe = opProbe, now, now
	r.nextProbe = now.Add(r.probeGap())
	return action{start: opProbe}
}
