package resilience

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// ConnectionState is where a ConnectionTracker is in its life cycle:
//
//	from                  event                                     to
//	any (Idle, Retrying)  RecordAttempt                             Connecting
//	Connecting            RecordFailure, attempts remain            Retrying
//	Connecting            RecordFailure, MaxAttempts used           Exhausted
//	Connecting            RecordFailure(Permanent(err))             Failed
//	Connecting            RecordCanceled (the attempt was cut short) Idle
//	Retrying              RecordStopped (the loop stopped waiting)  Idle
//	Connected             RecordDisconnect                          Idle
//	any                   RecordSuccess                             Connected
//	any                   Reset                                     Idle
//
// A failure recorded without RecordAttempt (the seed's style) moves Idle or
// Retrying the same way as from Connecting.
type ConnectionState uint8

// Connection states.
const (
	// Idle: new, reset, or cleanly disconnected.
	Idle ConnectionState = iota
	// Connecting: an attempt is in flight.
	Connecting
	// Connected: the last attempt succeeded and the connection is up.
	Connected
	// Retrying: the last attempt failed, attempts remain, the next one is scheduled.
	Retrying
	// Failed: a permanent error; no retry helps until Reset.
	Failed
	// Exhausted: MaxAttempts attempts were used; no retry until Reset.
	Exhausted
	stateCount
)

var stateNames = [...]string{"idle", "connecting", "connected", "retrying", "failed", "exhausted"}

// String returns the state's lower-case name.
func (s ConnectionState) String() string {
	if s < stateCount {
		return stateNames[s]
	}
	return fmt.Sprintf("ConnectionState(%d)", uint8(s))
}

// active reports whether the tracker holds information a caller is using right now;
// only inactive trackers expire or are evicted by a ConnectionManager.
func (s ConnectionState) active() bool {
	return s == Connecting || s == Connected || s == Retrying
}

// ConnectionTracker is the retry state machine of one connection (one peer).
//
// A ConnectionTracker is not safe for concurrent use. Trackers held by a
// ConnectionManager are changed through the manager, which serializes access.
type ConnectionTracker struct {
	// ConnectionID names the connection, typically a peer ID.
	ConnectionID string
	// State is the current state.
	State ConnectionState
	// AttemptCount counts attempts; it resets on success only with Config.ResetOnSuccess.
	AttemptCount uint32
	// ConsecutiveFailures counts failures since the last success; the backoff
	// delay grows with it.
	ConsecutiveFailures uint32
	// LastAttempt is when the last attempt started (zero if none).
	LastAttempt time.Time
	// LastSuccess is when the last attempt succeeded (zero if none).
	LastSuccess time.Time
	// LastError is the error of the last failed attempt, nil after a success.
	LastError error
	// Config is the retry policy this tracker enforces.
	Config RetryConfig

	lastDelay time.Duration // for JitterDecorrelated
	rng       uint64        // xorshift state for jitter; seeded on first use
	inFlight  uint16        // attempts started with RecordAttempt and not yet ended
	overtaken uint16        // attempts still in flight when a success came: their failure is stale
	// Lifetime totals, kept across successes and Reset, from which a
	// ConnectionManager's Stats are summed.
	totalAttempts, totalFailures, totalSuccesses uint32
}

// NewConnectionTracker returns an Idle tracker, or an error if cfg is invalid.
func NewConnectionTracker(connectionID string, cfg RetryConfig) (*ConnectionTracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &ConnectionTracker{ConnectionID: connectionID, Config: cfg}, nil
}

// RecordAttempt marks the start of an attempt: state Connecting, AttemptCount+1.
func (t *ConnectionTracker) RecordAttempt() { t.recordAttemptAt(time.Now()) }

func (t *ConnectionTracker) recordAttemptAt(now time.Time) {
	t.AttemptCount++
	t.totalAttempts++
	if t.inFlight < math.MaxUint16 {
		t.inFlight++
	}
	t.LastAttempt = now
	t.State = Connecting
}

// RecordSuccess marks the connection as up (from any state): state Connected,
// ConsecutiveFailures and LastError cleared, AttemptCount cleared if
// Config.ResetOnSuccess. It does not count an attempt: an inbound connection is a
// success nobody dialled. Attempts still in flight are overtaken: if one of them
// fails later, while the tracker is still Connected, that failure is stale and
// ignored.
func (t *ConnectionTracker) RecordSuccess() { t.recordSuccessAt(time.Now()) }

func (t *ConnectionTracker) recordSuccessAt(now time.Time) {
	if t.State != Connected {
		t.totalSuccesses++
	}
	t.overtaken = sat16(uint32(t.overtaken) + uint32(t.inFlight))
	t.inFlight = 0
	t.LastSuccess = now
	t.State = Connected
	t.ConsecutiveFailures = 0
	t.LastError = nil
	t.lastDelay = 0
	if t.Config.ResetOnSuccess {
		t.AttemptCount = 0
	}
}

// RecordFailure records a failed attempt. A Permanent error moves the tracker to
// Failed; otherwise it moves to Retrying, or to Exhausted once MaxAttempts attempts
// were used. A failure that ends no attempt started with RecordAttempt (the
// seed's style) counts as an attempt itself, but leaves LastAttempt alone: it
// does not read the clock. The failure of an attempt overtaken by a success
// (see RecordSuccess) while the tracker is Connected changes nothing.
func (t *ConnectionTracker) RecordFailure(err error) {
	switch t.endAttempt() {
	case endedOvertaken:
		if t.State == Connected {
			return // stale: the connection is up
		}
	case endedNone:
		t.AttemptCount++
		t.totalAttempts++
	}
	t.ConsecutiveFailures++
	t.totalFailures++
	t.LastError = err
	switch {
	case IsPermanent(err):
		t.State = Failed
	case t.Config.exhausted(t.AttemptCount):
		t.State = Exhausted
	default:
		t.State = Retrying
	}
}

// RecordDisconnect marks a clean disconnect: a Connected tracker becomes Idle.
// Other states are left alone (a disconnect says nothing about a dial in flight).
func (t *ConnectionTracker) RecordDisconnect() {
	if t.State == Connected {
		t.State = Idle
		t.overtaken = 0
	}
}

// RecordCanceled records that an attempt started with RecordAttempt was cut
// short (its caller's context ended): the attempt stays counted but is no
// failure of the connection, and once nothing is in flight any more, a
// Connecting or Retrying tracker becomes Idle (keeping its counters). Only the
// caller that started an attempt may cancel it; a loop that stops while it
// waits for its next attempt calls RecordStopped instead.
func (t *ConnectionTracker) RecordCanceled() {
	t.endAttempt()
	t.RecordStopped()
}

// RecordStopped records that a retry loop stopped while no attempt of its own
// was in flight (its context ended during the wait, or a guard refused the next
// attempt): nothing is scheduled any more, so a Retrying tracker becomes Idle.
// Attempts other callers have in flight are left alone: the tracker stays
// Connecting while one is.
func (t *ConnectionTracker) RecordStopped() {
	if t.inFlight == 0 && (t.State == Connecting || t.State == Retrying) {
		t.State = Idle
	}
}

// MaxDelay returns Config.MaxDelay, the cap RetryTracked keeps an adaptively
// stretched delay within.
func (t *ConnectionTracker) MaxDelay() time.Duration { return t.Config.MaxDelay }

type attemptEnd uint8

const (
	endedNone      attemptEnd = iota // no attempt was recorded as started
	endedInFlight                    // an attempt started with RecordAttempt
	endedOvertaken                   // an attempt a success overtook
)

// endAttempt ends one attempt started with RecordAttempt, if any. Overlapping
// attempts (two probes of one peer) are each counted once.
func (t *ConnectionTracker) endAttempt() attemptEnd {
	switch {
	case t.inFlight > 0:
		t.inFlight--
		return endedInFlight
	case t.overtaken > 0:
		t.overtaken--
		return endedOvertaken
	}
	return endedNone
}

func sat16(n uint32) uint16 { return uint16(min(n, math.MaxUint16)) }

// ShouldRetry reports whether another attempt is allowed: the tracker is neither
// Failed nor Exhausted and MaxAttempts (if any) is not used up.
func (t *ConnectionTracker) ShouldRetry() bool {
	if t.State == Failed || t.State == Exhausted {
		return false
	}
	return !t.Config.exhausted(t.AttemptCount)
}

// RetryDelay returns the jittered delay before the next attempt, growing with
// ConsecutiveFailures (see RetryConfig.BaseDelay). Each call draws new jitter.
func (t *ConnectionTracker) RetryDelay() time.Duration {
	d := t.Config.DelayWithRandom(t.ConsecutiveFailures, t.lastDelay, t.random())
	t.lastDelay = d
	return d
}

// random returns a uniform float64 in [0, 1) from the tracker's own xorshift64*
// generator (seeded from math/rand/v2): a few ns instead of the global
// source's, which matters on the failure path of every peer.
func (t *ConnectionTracker) random() float64 {
	x := t.rng
	if x == 0 {
		x = rand.Uint64() | 1
	}
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	t.rng = x
	return float64((x*0x2545F4914F6CDD1D)>>11) / (1 << 53)
}

// RecordFailureDelay records a failure and, in the same step, reports whether
// another attempt is allowed and how long to wait before it. It implements Tracked.
func (t *ConnectionTracker) RecordFailureDelay(err error) (time.Duration, bool) {
	t.RecordFailure(err)
	if !t.ShouldRetry() {
		return 0, false
	}
	return t.RetryDelay(), true
}

// Reset returns the tracker to Idle with all counters cleared; Config is kept
// (and the lifetime totals a ConnectionManager's Stats are made of).
func (t *ConnectionTracker) Reset() {
	*t = ConnectionTracker{
		ConnectionID: t.ConnectionID, Config: t.Config, rng: t.rng,
		totalAttempts: t.totalAttempts, totalFailures: t.totalFailures, totalSuccesses: t.totalSuccesses,
	}
}

// Tracked is a connection whose attempts RetryTracked records. *ConnectionTracker
// implements it for use by one goroutine; ConnectionManager.Tracked returns one
// that is safe for concurrent use.
type Tracked interface {
	// RecordAttempt marks the start of an attempt.
	RecordAttempt()
	// RecordSuccess marks the connection as up.
	RecordSuccess()
	// RecordFailureDelay records a failed attempt and reports the delay before the
	// next one, or false when no further attempt is allowed.
	RecordFailureDelay(err error) (time.Duration, bool)
	// RecordCanceled records that the caller's own attempt, started with
	// RecordAttempt, was cut short.
	RecordCanceled()
	// RecordStopped records that the loop stopped while none of its attempts was
	// in flight; it must leave other callers' attempts alone.
	RecordStopped()
	// MaxDelay is the configured cap of the delay between attempts (see
	// RetryConfig.MaxDelay); adaptive stretching stays within it.
	MaxDelay() time.Duration
}
