package healthmon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// Recoverer is what the monitor drives while the node is not healthy.
// *bootstrap.Bootstrapper implements it. The monitor never runs two of its calls
// at the same time, and every call gets a context that ends at the call's timeout
// (WithProbeTimeout, WithRecoverTimeout) or when the monitor closes.
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
	// peer was connected (an inbound connection, or a dial by anyone).
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
//	observed Healthy            -> idle: cancel a probe in flight, forget everything
//	observed not Healthy        -> active:
//	  evidence and gate open    -> Recover (one at a time; a probe in flight is cancelled first)
//	  no evidence, gate open    -> Probe, then wait [ProbeInterval, 1.2 ProbeInterval]
//	evidence: a probe succeeded, or a connection appeared while Unhealthy
//	gate: after a Recover that left the node unhealthy, closed for RecoverBackoff,
//	      doubling up to MaxRecoverBackoff
//	kernel link up / address added, local address or reachability change:
//	      open the gate and probe now (at most once per ProbeInterval)
type recovery struct {
	probeInterval time.Duration
	backoffFirst  time.Duration
	maxBackoff    time.Duration
	rand          func() float64 // [0,1)

	active      bool
	observed    Status
	evidence    Trigger   // zero: none
	evidenceAt  time.Time // when evidence was found
	nextProbe   time.Time
	gateOpensAt time.Time // no Recover (and no Probe) before this
	failed      int       // recoveries in a row that left the node unhealthy
	lastSignal  time.Time // last network signal that took effect

	op      opKind  // in flight
	trigger Trigger // of the Recover in flight
}

func newRecovery(probeInterval, backoffFirst, maxBackoff time.Duration) *recovery {
	return &recovery{probeInterval: probeInterval, backoffFirst: backoffFirst, maxBackoff: maxBackoff, rand: rand.Float64}
}

// action is what step asks the loop to do.
type action struct {
	start   opKind  // opProbe or opRecover to start one; opNone otherwise
	trigger Trigger // for opRecover
	cancel  bool    // cancel the probe in flight
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
		r.nextProbe = now
	}
}

// reset forgets the recovery state; an operation in flight stays recorded until it
// has finished.
func (r *recovery) reset() {
	*r = recovery{probeInterval: r.probeInterval, backoffFirst: r.backoffFirst, maxBackoff: r.maxBackoff, rand: r.rand,
		observed: Healthy, op: r.op, trigger: r.trigger}
}

// connected records that a connection was established.
func (r *recovery) connected(now time.Time) {
	if r.active && r.observed == Unhealthy && r.evidence == 0 {
		r.evidence, r.evidenceAt = TriggerConnection, now
	}
}

// networkChanged records a local network change that may have brought the network
// back (kernel link up, address added, local addresses or reachability changed).
// It reports whether the change took effect.
func (r *recovery) networkChanged(now time.Time) bool {
	if !r.active || (!r.lastSignal.IsZero() && now.Sub(r.lastSignal) < r.probeInterval) {
		return false
	}
	r.lastSignal = now
	r.nextProbe, r.gateOpensAt = now, now
	return true
}

// finished records the end of the operation in flight.
func (r *recovery) finished(now time.Time, res opResult) {
	r.op = opNone
	switch res.kind {
	case opProbe:
		// A successful probe's own connection usually shows up first: credit the probe.
		if res.err == nil && r.active {
			r.evidence, r.evidenceAt = TriggerProbe, now
		}
	case opRecover:
		r.trigger = 0
		if r.active { // not healthy yet; observe may still reset us
			r.failed++
			r.gateOpensAt = now.Add(r.backoff())
		}
	}
}

// backoff is the gate time after r.failed unsuccessful recoveries.
func (r *recovery) backoff() time.Duration {
	d := r.backoffFirst
	for i := 1; i < r.failed && d < r.maxBackoff; i++ {
		d *= 2
	}
	return min(d, r.maxBackoff)
}

// jitter returns a probe gap in [probeInterval, 1.2 probeInterval).
func (r *recovery) jitter() time.Duration {
	return r.probeInterval + time.Duration(r.rand()*float64(r.probeInterval)/5)
}

// step decides what to do at now.
func (r *recovery) step(now time.Time) action {
	if !r.active {
		return action{cancel: r.op == opProbe}
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
		r.op, r.trigger, r.evidence = opRecover, r.evidence, 0
		return a
	}
	if now.Before(r.nextProbe) {
		return action{wakeAt: r.nextProbe}
	}
	r.op = opProbe
	r.nextProbe = now.Add(r.jitter())
	return action{start: opProbe}
}
