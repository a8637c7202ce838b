package resilience_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// BenchmarkTrackerFailure: one RecordFailure plus one RetryDelay.
func BenchmarkTrackerFailure(b *testing.B) {
	cfg := resilience.DefaultRetryConfig()
	cfg.MaxAttempts = 0
	tr, _ := resilience.NewConnectionTracker("peer", cfg)
	var sink time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i&63 == 0 {
			tr.Reset()
		}
		tr.RecordFailure(errTest)
		sink += tr.RetryDelay()
	}
	_ = sink
}

// BenchmarkManagerParallel: atomic in-place records on 10k peer ids from every P.
func BenchmarkManagerParallel(b *testing.B) {
	cfg := resilience.DefaultRetryConfig()
	cfg.MaxAttempts = 0
	m, _ := resilience.NewConnectionManager(resilience.WithDefaultConfig(cfg))
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("12D3KooWPeer%040d", i)
		m.GetOrCreate(ids[i])
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(seed.Add(1), 0))
		for i := 0; pb.Next(); i++ {
			id := ids[r.IntN(len(ids))]
			if i&1 == 0 {
				m.RecordFailure(id, errTest)
			} else {
				m.RecordSuccess(id)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mops/s")
}

// BenchmarkRetrySuccess: Retry whose first attempt succeeds.
func BenchmarkRetrySuccess(b *testing.B) {
	ctx := context.Background()
	cfg := resilience.DefaultRetryConfig()
	op := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := resilience.Retry(ctx, cfg, op); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTrackerMemory reports the heap bytes a manager holds per tracked peer,
// for 100k peers with realistic (52-character) peer IDs.
func BenchmarkTrackerMemory(b *testing.B) {
	const peers = 100_000
	ids := make([]string, peers)
	for i := range ids {
		ids[i] = fmt.Sprintf("12D3KooW%044d", i)
	}
	var perPeer float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m, _ := resilience.NewConnectionManager(resilience.WithMaxTrackers(peers))
		for _, id := range ids {
			m.RecordFailure(id, errTest)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if m.Len() != peers {
			b.Fatalf("holds %d trackers", m.Len())
		}
		perPeer = float64(after.HeapAlloc-before.HeapAlloc) / peers
		runtime.KeepAlive(m)
	}
	b.ReportMetric(perPeer, "B/peer")
}

// BenchmarkThunderingHerd simulates, in virtual time, 100 clients that all fail at
// the same instant and then retry against a server that completes one call per
// 10ms slot (calls landing in a busy slot fail, as with optimistic concurrency).
// It reports, per jitter strategy, the calls made per client and the virtual time
// until every client got through: the cost of jitter that does not spread.
func BenchmarkThunderingHerd(b *testing.B) {
	const clients = 100
	const slot = 10 * time.Millisecond
	for _, strategy := range []resilience.JitterStrategy{resilience.JitterProportional, resilience.JitterFull, resilience.JitterEqual, resilience.JitterDecorrelated} {
		b.Run(strategy.String(), func(b *testing.B) {
			cfg := resilience.RetryConfig{MaxAttempts: 0, InitialDelay: 50 * time.Millisecond, MaxDelay: 5 * time.Second, BackoffMultiplier: 2, JitterFactor: 0.1, Jitter: strategy}
			var calls, drain float64
			runs := 0
			for b.Loop() {
				c, d := simulateHerd(cfg, clients, slot)
				calls += float64(c)
				drain += float64(d)
				runs++
			}
			b.ReportMetric(calls/float64(runs)/clients, "calls/client")
			b.ReportMetric(drain/float64(runs)/float64(time.Millisecond), "drain-ms")
		})
	}
}

func simulateHerd(cfg resilience.RetryConfig, clients int, slot time.Duration) (calls int, drain time.Duration) {
	type client struct {
		at       time.Duration
		failures uint32
		prev     time.Duration
	}
	pending := make([]client, clients) // all call at t=0
	for len(pending) > 0 {
		sort.Slice(pending, func(i, j int) bool { return pending[i].at < pending[j].at })
		// The earliest call's slot: one call in it succeeds, the rest fail.
		s := pending[0].at / slot
		n := 0
		for n < len(pending) && pending[n].at/slot == s {
			n++
		}
		calls += n
		drain = max(drain, pending[0].at)
		rest := pending[1:n]
		for i := range rest {
			rest[i].failures++
			d := cfg.Delay(rest[i].failures, rest[i].prev)
			rest[i].prev = d
			rest[i].at += d
		}
		pending = append(pending[:0], pending[1:]...)
	}
	return calls, drain
}
