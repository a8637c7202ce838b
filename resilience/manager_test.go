package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func newManager(t *testing.T, opts ...resilience.ManagerOption) *resilience.ConnectionManager {
	t.Helper()
	m, err := resilience.NewConnectionManager(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeClock is a manual clock for expiry tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestManagerGetOrCreate(t *testing.T) {
	m := newManager(t)
	tr := m.GetOrCreate("a")
	if tr.ConnectionID != "a" || tr.State != resilience.Idle || tr.Config != resilience.DefaultRetryConfig() {
		t.Fatalf("new tracker %+v", tr)
	}
	tr, err := m.GetOrCreateWithConfig("b", resilience.ForDHTBootstrap())
	if err != nil || tr.Config != resilience.ForDHTBootstrap() {
		t.Fatalf("with config: %+v %v", tr, err)
	}
	// An existing tracker keeps its config.
	if tr, _ := m.GetOrCreateWithConfig("b", resilience.ForWebRTC()); tr.Config != resilience.ForDHTBootstrap() {
		t.Fatalf("existing tracker's config replaced: %+v", tr.Config)
	}
	// Modify changes it in place.
	m.Modify("b", func(tr *resilience.ConnectionTracker) { tr.Config = resilience.ForWebRTC() })
	if tr, _ := m.Get("b"); tr.Config != resilience.ForWebRTC() {
		t.Fatalf("config set by Modify ignored: %+v", tr.Config)
	}
	bad := resilience.ForWebRTC()
	bad.JitterFactor = 3
	if _, err := m.GetOrCreateWithConfig("c", bad); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Fatalf("invalid config accepted: %v", err)
	}
	if _, err := m.GetOrCreateWithConfig("b", bad); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Fatalf("invalid config accepted: %v", err)
	}
	if _, ok := m.Get("c"); ok {
		t.Fatal("tracker created for an invalid config")
	}
	if m.Len() != 2 {
		t.Fatalf("Len %d, want 2", m.Len())
	}
	m.Remove("a")
	if _, ok := m.Get("a"); ok || m.Len() != 1 {
		t.Fatal("Remove did not remove")
	}
}

func TestManagerOptionsValidated(t *testing.T) {
	for name, opt := range map[string]resilience.ManagerOption{
		"ttl":   resilience.WithIdleTTL(0),
		"max":   resilience.WithMaxTrackers(-1),
		"clock": resilience.WithClock(nil),
	} {
		if _, err := resilience.NewConnectionManager(opt); !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestManagerSeedStyleUpdate(t *testing.T) {
	m := newManager(t)
	tr := m.GetOrCreate("peer")
	tr.RecordFailure(errTest)
	tr.RecordFailure(errTest)
	if err := m.Update(tr); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Get("peer")
	if got.State != resilience.Retrying || got.ConsecutiveFailures != 2 {
		t.Fatalf("after Update: %+v", got)
	}
	st := m.Stats()
	if st.Retrying != 1 || st.TotalAttempts != 2 || st.TotalFailures != 2 {
		t.Fatalf("stats %+v", st)
	}
	tr.Config.BackoffMultiplier = -1
	if err := m.Update(tr); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Fatalf("invalid Update accepted: %v", err)
	}
}

func TestManagerByStateAndStats(t *testing.T) {
	m := newManager(t)
	m.RecordSuccess("connected")
	m.RecordAttempt("connecting")
	m.RecordFailure("retrying", errTest)
	m.RecordFailure("failed", resilience.Permanent(errTest))
	m.GetOrCreate("idle")
	for range 5 {
		m.RecordFailure("exhausted", errTest)
	}
	want := map[resilience.ConnectionState]string{
		resilience.Connected: "connected", resilience.Connecting: "connecting", resilience.Retrying: "retrying",
		resilience.Failed: "failed", resilience.Idle: "idle", resilience.Exhausted: "exhausted",
	}
	for state, id := range want {
		got := m.ByState(state)
		if len(got) != 1 || got[0].ConnectionID != id {
			t.Errorf("ByState(%v) = %v", state, got)
		}
	}
	st := m.Stats()
	wantStats := resilience.ConnectionStats{
		TotalConnections: 6, Idle: 1, Connecting: 1, Connected: 1, Retrying: 1, Failed: 1, Exhausted: 1,
		TotalAttempts: 8, TotalFailures: 7, TotalSuccesses: 1, SuccessRate: 1.0 / 8,
	}
	if st != wantStats {
		t.Fatalf("stats\n got %+v\nwant %+v", st, wantStats)
	}
	ids := []string{}
	for _, tr := range m.All() {
		ids = append(ids, tr.ConnectionID)
	}
	sort.Strings(ids)
	if fmt.Sprint(ids) != "[connected connecting exhausted failed idle retrying]" {
		t.Fatalf("All = %v", ids)
	}
}

func TestManagerSuccessCountedOncePerConnection(t *testing.T) {
	m := newManager(t)
	m.RecordSuccess("p") // the connection event
	m.RecordSuccess("p") // the dial that caused it returns
	m.Modify("p", func(tr *resilience.ConnectionTracker) { tr.RecordSuccess() })
	if st := m.Stats(); st.TotalSuccesses != 1 {
		t.Fatalf("one connection counted %d times", st.TotalSuccesses)
	}
	m.ModifyExisting("p", (*resilience.ConnectionTracker).RecordDisconnect)
	m.RecordSuccess("p")
	if st := m.Stats(); st.TotalSuccesses != 2 {
		t.Fatalf("reconnection: %d successes, want 2", st.TotalSuccesses)
	}
	if _, ok := m.ModifyExisting("nobody", func(*resilience.ConnectionTracker) { t.Fatal("fn called") }); ok {
		t.Fatal("ModifyExisting reported a tracker that does not exist")
	}
	if _, ok := m.Get("nobody"); ok {
		t.Fatal("ModifyExisting created a tracker")
	}
	if tr, ok := m.ModifyExisting("p", func(tr *resilience.ConnectionTracker) { tr.RecordDisconnect() }); !ok || tr.State != resilience.Idle {
		t.Fatalf("ModifyExisting: %+v %v", tr, ok)
	}
}

func TestManagerRecordFailureReportsNextDelay(t *testing.T) {
	cfg := fastConfig(2)
	m := newManager(t, resilience.WithDefaultConfig(cfg))
	d, retry := m.RecordFailure("p", errTest)
	if !retry || d < 9*time.Millisecond || d > 11*time.Millisecond {
		t.Fatalf("first failure: %v %v", d, retry)
	}
	if _, retry := m.RecordFailure("p", errTest); retry {
		t.Fatal("retry allowed after MaxAttempts")
	}
	m.ModifyExisting("p", (*resilience.ConnectionTracker).Reset)
	if tr, _ := m.Get("p"); tr.State != resilience.Idle || tr.AttemptCount != 0 {
		t.Fatalf("after Reset: %+v", tr)
	}
	m.ModifyExisting("nobody", (*resilience.ConnectionTracker).RecordDisconnect)
	m.ModifyExisting("nobody", (*resilience.ConnectionTracker).Reset)
	if _, ok := m.Get("nobody"); ok {
		t.Fatal("RecordDisconnect/Reset created a tracker")
	}
}

// Many goroutines record on shared ids; no update may be lost.
func TestManagerConcurrentExactTotals(t *testing.T) {
	cfg := resilience.DefaultRetryConfig()
	cfg.MaxAttempts = 0
	cfg.ResetOnSuccess = false
	m := newManager(t, resilience.WithDefaultConfig(cfg))
	const (
		goroutines = 16
		perG       = 2000
		ids        = 7
	)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				id := fmt.Sprintf("peer-%d", (g+i)%ids)
				// Each call is one atomic step; a failure without RecordAttempt
				// counts its own attempt.
				switch i % 4 {
				case 0:
					m.RecordSuccess(id)
				case 1:
					m.Modify(id, func(t *resilience.ConnectionTracker) { t.RecordFailure(errTest) })
				default:
					m.RecordFailure(id, errTest)
				}
			}
		})
	}
	wg.Wait()
	st := m.Stats()
	const total = goroutines * perG
	// Successes count entries into Connected: at most one per RecordSuccess.
	if st.TotalAttempts != total*3/4 || st.TotalFailures != total*3/4 || st.TotalSuccesses == 0 || st.TotalSuccesses > total/4 {
		t.Fatalf("stats %+v, want %d attempts, %d failures, 1..%d successes", st, total*3/4, total*3/4, total/4)
	}
	var attempts uint32
	for _, tr := range m.All() {
		attempts += tr.AttemptCount
	}
	if attempts != total*3/4 {
		t.Fatalf("trackers hold %d attempts, want %d", attempts, total*3/4)
	}
	if st.TotalConnections != ids || st.Connected+st.Retrying != ids {
		t.Fatalf("state counts %+v", st)
	}
}

func TestManagerIdleTTL(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	m := newManager(t, resilience.WithClock(clock.Now), resilience.WithIdleTTL(time.Minute))
	m.GetOrCreate("idle")
	m.RecordSuccess("connected")
	m.RecordFailure("failed", resilience.Permanent(errTest))
	clock.Advance(59 * time.Second)
	m.GetOrCreate("failed") // use refreshes it
	clock.Advance(2 * time.Second)
	if _, ok := m.Get("idle"); ok {
		t.Fatal("idle tracker outlived its TTL")
	}
	if _, ok := m.Get("connected"); !ok {
		t.Fatal("connected tracker expired")
	}
	if _, ok := m.Get("failed"); !ok {
		t.Fatal("recently used tracker expired")
	}
	clock.Advance(time.Minute)
	if n := m.Sweep(); n != 1 {
		t.Fatalf("Sweep removed %d, want 1 (failed)", n)
	}
	if st := m.Stats(); st.TotalConnections != 1 || st.Connected != 1 || m.Len() != 1 {
		t.Fatalf("after sweep: %+v len %d", st, m.Len())
	}
	m.ModifyExisting("connected", (*resilience.ConnectionTracker).RecordDisconnect) // now idle: expires a TTL later
	clock.Advance(time.Minute)
	if len(m.All()) != 0 {
		t.Fatal("disconnected tracker did not expire")
	}
}

// A flood of ids cannot grow the manager past its cap; the least recently used
// inactive tracker goes first; active ones stay.
func TestManagerEvictsOldestIdle(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	m := newManager(t, resilience.WithClock(clock.Now), resilience.WithMaxTrackers(100))
	m.RecordSuccess("keep-connected")
	m.RecordFailure("keep-retrying", errTest)
	m.GetOrCreate("oldest")
	clock.Advance(time.Second)
	m.GetOrCreate("second")
	clock.Advance(time.Second)
	m.GetOrCreate("oldest") // used again: now the newest
	for i := range 10000 {
		clock.Advance(time.Millisecond)
		m.GetOrCreate(fmt.Sprintf("flood-%d", i))
		if m.Len() > 100 {
			t.Fatalf("manager grew to %d trackers", m.Len())
		}
		if i == 95 { // 4 + 96 = 100 held; the next creation evicts
			if _, ok := m.Get("second"); !ok {
				t.Fatal("evicted before the cap")
			}
		}
		if i == 96 {
			if _, ok := m.Get("second"); ok {
				t.Fatal("least recently used idle tracker not evicted first")
			}
			if _, ok := m.Get("oldest"); !ok {
				t.Fatal("recently used tracker evicted before older ones")
			}
		}
	}
	for _, id := range []string{"keep-connected", "keep-retrying"} {
		if _, ok := m.Get(id); !ok {
			t.Fatalf("active tracker %s evicted", id)
		}
	}
	if st := m.Stats(); st.TotalConnections != 100 || st.Idle != 98 {
		t.Fatalf("stats %+v", st)
	}
}

// The seed's pattern — copy, retry on the copy, write back — keeps its statistics,
// successes (which reset the visible counters) included.
func TestManagerSeedStyleUpdateCountsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newManager(t, resilience.WithDefaultConfig(fastConfig(5)))
		tr := m.GetOrCreate("peer-123")
		calls := 0
		_, err := resilience.RetryTracked(t.Context(), &tr, func(context.Context) (int, error) {
			if calls++; calls <= 3 {
				return 0, errTest
			}
			return 1, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Update(tr); err != nil {
			t.Fatal(err)
		}
		st := m.Stats()
		if st.TotalAttempts != 4 || st.TotalFailures != 3 || st.TotalSuccesses != 1 || st.Connected != 1 {
			t.Fatalf("stats %+v, want 4 attempts, 3 failures, 1 success", st)
		}
	})
}

// Concurrent creators at the cap evict exactly down to it, never below.
func TestManagerEvictionNeverBelowCap(t *testing.T) {
	for range 20 {
		m := newManager(t, resilience.WithMaxTrackers(100))
		for i := range 100 {
			m.GetOrCreate(fmt.Sprint("old-", i))
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					m.GetOrCreate(fmt.Sprintf("new-%d-%d", g, i))
				}
			})
		}
		wg.Wait()
		if m.Len() != 100 || m.Stats().TotalConnections != 100 {
			t.Fatalf("manager holds %d trackers (stats %d), want the cap 100", m.Len(), m.Stats().TotalConnections)
		}
	}
}
