package resilience

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Manager defaults.
const (
	// DefaultIdleTTL is how long an inactive tracker (Idle, Failed or Exhausted)
	// is kept after its last change.
	DefaultIdleTTL = 30 * time.Minute
	// DefaultMaxTrackers caps the number of trackers a manager holds.
	DefaultMaxTrackers = 16384
)

const shardCount = 32 // a power of two

// ConnectionManager holds the ConnectionTracker of every connection (peer) and is
// safe for concurrent use.
//
// Updates are atomic: RecordAttempt, RecordSuccess, RecordFailure,
// RecordDisconnect and Modify change a tracker in place under the manager's lock,
// so concurrent callers never lose each other's updates. Update (the seed's
// get-copy-then-write style) overwrites whatever happened in between; prefer the
// in-place methods.
//
// The manager is bounded: inactive trackers (Idle, Failed, Exhausted) expire
// DefaultIdleTTL after their last change, and when more than MaxTrackers exist the
// inactive tracker changed least recently is evicted. Active trackers (Connecting,
// Connected, Retrying) are never evicted; their number is bounded by the host's own
// connection limits. Expired trackers are removed as new trackers are created and by
// Sweep; lookups never return them.
type ConnectionManager struct {
	cfg    managerConfig
	epoch  time.Time
	seed   uint64
	count  atomic.Int64
	shards [shardCount]shard
}

type shard struct {
	mu      sync.Mutex
	entries map[string]*entry
	idle    entry // sentinel of the list of inactive entries, most recently changed first
	states  [stateCount]int
	m       *ConnectionManager
	now     lazyClock // the clock read of the operation holding mu

	attempts, failures, successes uint64
	_                             [64]byte // keep shards on separate cache lines
}

type entry struct {
	t          ConnectionTracker
	touched    int64 // ns since manager epoch; meaningful while inactive
	prev, next *entry
}

type managerConfig struct {
	defaultConfig RetryConfig
	idleTTL       time.Duration
	maxTrackers   int
	tracer        MetricsTracer
	now           func() time.Time
}

// ManagerOption configures a ConnectionManager.
type ManagerOption func(*managerConfig) error

// WithDefaultConfig sets the RetryConfig of trackers created without one.
// Default: DefaultRetryConfig().
func WithDefaultConfig(cfg RetryConfig) ManagerOption {
	return func(c *managerConfig) error {
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("WithDefaultConfig: %w", err)
		}
		c.defaultConfig = cfg
		return nil
	}
}

// WithIdleTTL sets how long an inactive tracker is kept after its last change.
// Default: DefaultIdleTTL (30 minutes). Must be positive.
func WithIdleTTL(d time.Duration) ManagerOption {
	return func(c *managerConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: WithIdleTTL(%v): must be positive", ErrInvalidConfig, d)
		}
		c.idleTTL = d
		return nil
	}
}

// WithMaxTrackers caps the number of trackers. Default: DefaultMaxTrackers (16384).
// Must be positive.
func WithMaxTrackers(n int) ManagerOption {
	return func(c *managerConfig) error {
		if n <= 0 {
			return fmt.Errorf("%w: WithMaxTrackers(%d): must be positive", ErrInvalidConfig, n)
		}
		c.maxTrackers = n
		return nil
	}
}

// WithManagerMetrics reports tracker creation, removal and state changes to t.
// Default: nil (off). t is called with the manager's lock held: it must not call
// back into the manager.
func WithManagerMetrics(t MetricsTracer) ManagerOption {
	return func(c *managerConfig) error {
		c.tracer = t
		return nil
	}
}

// WithClock replaces time.Now for expiry decisions (tests may instead run in a
// testing/synctest bubble). Default: time.Now.
func WithClock(now func() time.Time) ManagerOption {
	return func(c *managerConfig) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidConfig)
		}
		c.now = now
		return nil
	}
}

// NewConnectionManager returns an empty manager.
func NewConnectionManager(opts ...ManagerOption) (*ConnectionManager, error) {
	cfg := managerConfig{
		defaultConfig: DefaultRetryConfig(),
		idleTTL:       DefaultIdleTTL,
		maxTrackers:   DefaultMaxTrackers,
	}
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	m := &ConnectionManager{cfg: cfg, epoch: time.Now(), seed: rand.Uint64() | 1}
	if cfg.now != nil {
		m.epoch = cfg.now()
	}
	for i := range m.shards {
		s := &m.shards[i]
		s.entries = make(map[string]*entry)
		s.m = m
		s.idle.prev, s.idle.next = &s.idle, &s.idle
	}
	return m, nil
}

// DefaultConfig returns the RetryConfig given to trackers created without one.
func (m *ConnectionManager) DefaultConfig() RetryConfig { return m.cfg.defaultConfig }

// shardFor picks id's shard from (up to) its last 8 bytes. Peer IDs end in hash
// output, so this spreads them as well as hashing the whole string, at a fraction
// of the cost: the map hashes the id again anyway.
func (m *ConnectionManager) shardFor(id string) *shard {
	h := m.seed
	for i := max(len(id)-8, 0); i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 0x100000001b3 // FNV-1a
	}
	return &m.shards[(h^h>>29)&(shardCount-1)]
}

// clock returns the manager's time: ns since its creation. The default reads
// only the monotonic clock (time.Since), half the cost of time.Now.
func (m *ConnectionManager) clock() int64 {
	if m.cfg.now != nil {
		return int64(m.cfg.now().Sub(m.epoch))
	}
	return int64(time.Since(m.epoch))
}

// lookup returns id's live entry; an expired one is removed. s.mu must be held.
// now is read only if an inactive entry needs checking.
func (m *ConnectionManager) lookup(s *shard, id string, now *lazyClock) *entry {
	e := s.entries[id]
	if e != nil && !e.t.State.active() && now.get(m)-e.touched >= int64(m.cfg.idleTTL) {
		m.removeLocked(s, e)
		return nil
	}
	return e
}

// getOrCreate returns id's entry, creating it with cfg. s.mu must be held.
// overflow reports that a creation took the manager past maxTrackers: the caller
// evicts (evictOldestIdle) once s.mu is released.
func (m *ConnectionManager) getOrCreate(s *shard, id string, cfg *RetryConfig, now *lazyClock) (e *entry, overflow bool) {
	if e = m.lookup(s, id, now); e != nil {
		return e, false
	}
	m.expireLocked(s, 4, now.get(m))
	e = &entry{t: ConnectionTracker{ConnectionID: id, Config: *cfg}, touched: now.get(m)}
	s.entries[id] = e
	s.states[Idle]++
	s.pushIdle(e)
	if m.cfg.tracer != nil {
		m.cfg.tracer.TrackerCreated()
	}
	return e, m.count.Add(1) > int64(m.cfg.maxTrackers)
}

// apply runs op on id's tracker under the shard lock, keeping the state counts,
// the idle list and the metrics in step, and returns a copy of the result. Without
// a tracker, apply creates one with cfg, or, if cfg is nil, does nothing and
// returns false.
func (m *ConnectionManager) apply(id string, cfg *RetryConfig, op func(t *ConnectionTracker, s *shard)) (ConnectionTracker, bool) {
	s := m.shardFor(id)
	s.mu.Lock()
	s.now = lazyClock{} // this operation's clock read, shared by all its steps
	now := &s.now
	var e *entry
	overflow := false
	if cfg != nil {
		e, overflow = m.getOrCreate(s, id, cfg, now)
	} else if e = m.lookup(s, id, now); e == nil {
		s.mu.Unlock()
		return ConnectionTracker{}, false
	}
	from := e.t.State
	attempts, failures, successes := e.t.totalAttempts, e.t.totalFailures, e.t.totalSuccesses
	op(&e.t, s)
	e.t.ConnectionID = id
	s.attempts += delta(attempts, e.t.totalAttempts)
	s.failures += delta(failures, e.t.totalFailures)
	s.successes += delta(successes, e.t.totalSuccesses)
	to := e.t.State
	if from != to {
		s.states[from]--
		s.states[to]++
	}
	switch {
	case to.active():
		if !from.active() {
			unlink(e)
		}
	case from.active():
		e.touched = now.get(m)
		s.pushIdle(e)
	default: // inactive before and after: now the most recently used
		e.touched = now.get(m)
		unlink(e)
		s.pushIdle(e)
	}
	snapshot := e.t
	s.mu.Unlock()
	if from != to && m.cfg.tracer != nil {
		m.cfg.tracer.TrackerStateChanged(from, to)
	}
	if overflow {
		m.evictOldestIdle()
	}
	return snapshot, true
}

// GetOrCreate returns a copy of id's tracker, creating an Idle one with the default
// config if there is none.
func (m *ConnectionManager) GetOrCreate(id string) ConnectionTracker {
	t, _ := m.apply(id, &m.cfg.defaultConfig, func(*ConnectionTracker, *shard) {})
	return t
}

// GetOrCreateWithConfig returns a copy of id's tracker, creating an Idle one with cfg
// if there is none. An existing tracker keeps its config; use SetConfig to change it.
func (m *ConnectionManager) GetOrCreateWithConfig(id string, cfg RetryConfig) (ConnectionTracker, error) {
	if err := cfg.Validate(); err != nil {
		return ConnectionTracker{}, err
	}
	t, _ := m.apply(id, &cfg, func(*ConnectionTracker, *shard) {})
	return t, nil
}

// Get returns a copy of id's tracker, if there is one.
func (m *ConnectionManager) Get(id string) (ConnectionTracker, bool) {
	s := m.shardFor(id)
	var now lazyClock
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := m.lookup(s, id, &now); e != nil {
		return e.t, true
	}
	return ConnectionTracker{}, false
}

// Update stores t as the tracker of t.ConnectionID, replacing what is there. It is
// the seed's write-back step; concurrent changes made since t was copied are lost.
// The in-place methods (RecordFailure, Modify, ...) do not have that problem.
// Stats count what was recorded on the copy since it was taken.
func (m *ConnectionManager) Update(t ConnectionTracker) error {
	if err := t.Config.Validate(); err != nil {
		return err
	}
	if t.State >= stateCount {
		return fmt.Errorf("%w: tracker %q has unknown state %d", ErrInvalidConfig, t.ConnectionID, t.State)
	}
	m.apply(t.ConnectionID, &t.Config, func(dst *ConnectionTracker, _ *shard) { *dst = t })
	return nil
}

// Modify runs fn on id's tracker (created with the default config if absent) under
// the manager's lock and returns a copy of the result. fn must not block or call
// back into the manager. Changes to ConnectionID are ignored. Stats count the
// attempts, failures and successes fn records with the tracker's methods.
func (m *ConnectionManager) Modify(id string, fn func(*ConnectionTracker)) ConnectionTracker {
	t, _ := m.apply(id, &m.cfg.defaultConfig, func(t *ConnectionTracker, _ *shard) { fn(t) })
	return t
}

// ModifyExisting is Modify without creating: it reports false, and does not call
// fn, if id has no tracker.
func (m *ConnectionManager) ModifyExisting(id string, fn func(*ConnectionTracker)) (ConnectionTracker, bool) {
	return m.apply(id, nil, func(t *ConnectionTracker, _ *shard) { fn(t) })
}

// RecordAttempt marks the start of an attempt on id's tracker.
func (m *ConnectionManager) RecordAttempt(id string) {
	m.apply(id, &m.cfg.defaultConfig, func(t *ConnectionTracker, s *shard) { t.recordAttemptAt(s.wallClock()) })
}

// RecordSuccess marks id's connection as up. Stats count it as a success only if
// the tracker was not already Connected (a dial that succeeds after the
// connection event already announced it is one success, not two).
func (m *ConnectionManager) RecordSuccess(id string) {
	m.apply(id, &m.cfg.defaultConfig, func(t *ConnectionTracker, s *shard) { t.recordSuccessAt(s.wallClock()) })
}

// RecordFailure records a failed attempt on id's tracker and reports, in the same
// atomic step, the delay before the next attempt or false when none is allowed.
func (m *ConnectionManager) RecordFailure(id string, err error) (delay time.Duration, retry bool) {
	m.apply(id, &m.cfg.defaultConfig, func(t *ConnectionTracker, _ *shard) { delay, retry = t.RecordFailureDelay(err) })
	return delay, retry
}

// Remove deletes id's tracker.
func (m *ConnectionManager) Remove(id string) {
	s := m.shardFor(id)
	s.mu.Lock()
	if e := s.entries[id]; e != nil {
		m.removeLocked(s, e)
	}
	s.mu.Unlock()
}

// Tracked returns a handle that records id's attempts in this manager, for
// RetryTracked. It is safe for concurrent use.
func (m *ConnectionManager) Tracked(id string) Tracked { return managedTracker{m: m, id: id} }

type managedTracker struct {
	m  *ConnectionManager
	id string
}

func (h managedTracker) RecordAttempt() { h.m.RecordAttempt(h.id) }
func (h managedTracker) RecordSuccess() { h.m.RecordSuccess(h.id) }
func (h managedTracker) RecordCanceled() {
	h.m.apply(h.id, nil, func(t *ConnectionTracker, _ *shard) { t.RecordCanceled() })
}
func (h managedTracker) RecordStopped() {
	h.m.apply(h.id, nil, func(t *ConnectionTracker, _ *shard) { t.RecordStopped() })
}
func (h managedTracker) MaxDelay() time.Duration {
	if t, ok := h.m.Get(h.id); ok {
		return t.Config.MaxDelay
	}
	return h.m.cfg.defaultConfig.MaxDelay
}
func (h managedTracker) RecordFailureDelay(err error) (time.Duration, bool) {
	return h.m.RecordFailure(h.id, err)
}

// ByState returns copies of the trackers in state, in no particular order.
func (m *ConnectionManager) ByState(state ConnectionState) []ConnectionTracker {
	var out []ConnectionTracker
	m.each(func(t *ConnectionTracker) {
		if t.State == state {
			out = append(out, *t)
		}
	})
	return out
}

// All returns copies of every tracker, in no particular order.
func (m *ConnectionManager) All() []ConnectionTracker {
	out := make([]ConnectionTracker, 0, m.Len())
	m.each(func(t *ConnectionTracker) { out = append(out, *t) })
	return out
}

func (m *ConnectionManager) each(fn func(*ConnectionTracker)) {
	now := m.clock()
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for _, e := range s.entries {
			if e.t.State.active() || now-e.touched < int64(m.cfg.idleTTL) {
				fn(&e.t)
			}
		}
		s.mu.Unlock()
	}
}

// Len returns the number of trackers held, expired ones not yet swept included.
func (m *ConnectionManager) Len() int { return int(m.count.Load()) }

// Sweep removes every expired tracker and returns how many it removed.
func (m *ConnectionManager) Sweep() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += m.expireLocked(s, math.MaxInt, m.clock())
		s.mu.Unlock()
	}
	return n
}

// ConnectionStats summarizes a ConnectionManager (the seed's fields plus Idle and
// TotalSuccesses).
type ConnectionStats struct {
	TotalConnections int // trackers held
	Idle             int
	Connecting       int
	Connected        int
	Retrying         int
	Failed           int
	Exhausted        int
	TotalAttempts    uint64 // attempts recorded since the manager was created
	TotalFailures    uint64 // failed attempts recorded since the manager was created
	TotalSuccesses   uint64 // successes recorded since the manager was created
	// SuccessRate is TotalSuccesses / (TotalSuccesses + TotalFailures), 0 when
	// nothing has finished yet.
	SuccessRate float64
}

// Stats returns counts per state and lifetime totals. It costs O(shards), not
// O(trackers): expired trackers are counted until swept.
func (m *ConnectionManager) Stats() ConnectionStats {
	var st ConnectionStats
	var states [stateCount]int
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for j, n := range s.states {
			states[j] += n
		}
		st.TotalAttempts += s.attempts
		st.TotalFailures += s.failures
		st.TotalSuccesses += s.successes
		s.mu.Unlock()
	}
	st.Idle, st.Connecting, st.Connected = states[Idle], states[Connecting], states[Connected]
	st.Retrying, st.Failed, st.Exhausted = states[Retrying], states[Failed], states[Exhausted]
	for _, n := range states {
		st.TotalConnections += n
	}
	if done := st.TotalSuccesses + st.TotalFailures; done > 0 {
		st.SuccessRate = float64(st.TotalSuccesses) / float64(done)
	}
	return st
}

// expireLocked removes up to limit expired entries from the cold end of s's idle list.
func (m *ConnectionManager) expireLocked(s *shard, limit int, now int64) int {
	n := 0
	for e := s.idle.prev; e != &s.idle && n < limit && now-e.touched >= int64(m.cfg.idleTTL); e = s.idle.prev {
		m.removeLocked(s, e)
		n++
	}
	return n
}

// evictOldestIdle removes the least recently changed inactive tracker, across all
// shards, while the manager holds more than maxTrackers. Concurrent evictions
// claim each removal with a compare-and-swap on the count, so together they never
// take the manager below the cap.
func (m *ConnectionManager) evictOldestIdle() {
	for {
		n := m.count.Load()
		if n <= int64(m.cfg.maxTrackers) {
			return
		}
		var victim *shard
		oldest := int64(math.MaxInt64)
		for i := range m.shards {
			s := &m.shards[i]
			s.mu.Lock()
			if e := s.idle.prev; e != &s.idle && e.touched < oldest {
				oldest, victim = e.touched, s
			}
			s.mu.Unlock()
		}
		if victim == nil {
			return // everything is active: nothing may be evicted
		}
		victim.mu.Lock()
		if e := victim.idle.prev; e != &victim.idle && m.count.CompareAndSwap(n, n-1) {
			m.unlinkEntry(victim, e)
		}
		victim.mu.Unlock()
	}
}

func (m *ConnectionManager) removeLocked(s *shard, e *entry) {
	m.count.Add(-1)
	m.unlinkEntry(s, e)
}

// unlinkEntry removes e from s, without the count. s.mu must be held.
func (m *ConnectionManager) unlinkEntry(s *shard, e *entry) {
	delete(s.entries, e.t.ConnectionID)
	s.states[e.t.State]--
	if !e.t.State.active() {
		unlink(e)
	}
	if m.cfg.tracer != nil {
		m.cfg.tracer.TrackerRemoved(e.t.State)
	}
}

// delta is what a lifetime total grew by (0 if a seed-style Update wrote back an
// older copy).
func delta(before, after uint32) uint64 {
	if after < before {
		return 0
	}
	return uint64(after - before)
}

// wallClock returns the current time from the manager's clock: the clock read of
// this operation (at most one), as a time.Time for LastAttempt and LastSuccess.
// s.mu must be held.
func (s *shard) wallClock() time.Time {
	return s.m.epoch.Add(time.Duration(s.now.get(s.m)))
}

// lazyClock reads the manager's clock at most once per operation, and only if needed.
type lazyClock struct {
	ns   int64
	read bool
}

func (c *lazyClock) get(m *ConnectionManager) int64 {
	if !c.read {
		c.ns, c.read = m.clock(), true
	}
	return c.ns
}

func (s *shard) pushIdle(e *entry) {
	e.prev, e.next = &s.idle, s.idle.next
	s.idle.next.prev = e
	s.idle.next = e
}

func unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}
