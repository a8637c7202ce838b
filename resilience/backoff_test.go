package resilience_test

import (
	"math"
	"testing"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// The seed's table: default config, 10% jitter.
func TestSeedDelayTable(t *testing.T) {
	cfg := resilience.DefaultRetryConfig()
	table := []struct {
		n        uint32
		base     time.Duration
		min, max time.Duration
	}{
		{1, 500 * time.Millisecond, 475 * time.Millisecond, 525 * time.Millisecond},
		{2, 1000 * time.Millisecond, 950 * time.Millisecond, 1050 * time.Millisecond},
		{3, 2000 * time.Millisecond, 1900 * time.Millisecond, 2100 * time.Millisecond},
		{4, 4000 * time.Millisecond, 3800 * time.Millisecond, 4200 * time.Millisecond},
		{5, 8000 * time.Millisecond, 7600 * time.Millisecond, 8400 * time.Millisecond},
	}
	for _, row := range table {
		if got := cfg.BaseDelay(row.n); got != row.base {
			t.Errorf("BaseDelay(%d) = %v, want %v", row.n, got, row.base)
		}
		if got := cfg.DelayWithRandom(row.n, 0, 0); got != row.min {
			t.Errorf("lowest delay %d = %v, want %v", row.n, got, row.min)
		}
		if got := cfg.DelayWithRandom(row.n, 0, math.Nextafter(1, 0)); got < row.max-time.Microsecond || got > row.max {
			t.Errorf("highest delay %d = %v, want just under %v", row.n, got, row.max)
		}
		for range 1000 {
			if d := cfg.Delay(row.n, 0); d < row.min || d > row.max {
				t.Fatalf("Delay(%d) = %v outside [%v, %v]", row.n, d, row.min, row.max)
			}
		}
	}
}

func TestBaseDelayCapAndEdges(t *testing.T) {
	cfg := resilience.DefaultRetryConfig()
	for _, n := range []uint32{7, 8, 64, 1024, 1 << 20, math.MaxUint32} {
		if got := cfg.BaseDelay(n); got != cfg.MaxDelay {
			t.Errorf("BaseDelay(%d) = %v, want cap %v", n, got, cfg.MaxDelay)
		}
	}
	if got := cfg.BaseDelay(0); got != cfg.InitialDelay {
		t.Errorf("BaseDelay(0) = %v, want InitialDelay", got)
	}
	huge := resilience.RetryConfig{InitialDelay: time.Duration(math.MaxInt64 / 2), MaxDelay: time.Duration(math.MaxInt64), BackoffMultiplier: 10, JitterFactor: 1}
	for _, n := range []uint32{1, 2, 3, 1000} {
		for _, u := range []float64{0, 0.5, math.Nextafter(1, 0)} {
			if d := huge.DelayWithRandom(n, 0, u); d < 0 {
				t.Fatalf("huge config: n=%d u=%v delay %v < 0", n, u, d)
			}
		}
	}
	flat := resilience.RetryConfig{InitialDelay: time.Second, MaxDelay: time.Minute, BackoffMultiplier: 1}
	if got := flat.BaseDelay(100); got != time.Second {
		t.Errorf("multiplier 1: BaseDelay(100) = %v, want 1s", got)
	}
}

// Each strategy stays in its bounds, covers them (min and max observed near the ends)
// and has the expected mean; at the cap, delays still spread.
func TestJitterStrategiesStatistically(t *testing.T) {
	const samples = 20000
	cfg := resilience.RetryConfig{MaxAttempts: 0, InitialDelay: 100 * time.Millisecond, MaxDelay: 10 * time.Second, BackoffMultiplier: 2, JitterFactor: 0.2}
	for _, n := range []uint32{3, 40} { // base 400ms; base at the cap
		base := float64(cfg.BaseDelay(n))
		tests := []struct {
			strategy resilience.JitterStrategy
			lo, hi   float64
		}{
			{resilience.JitterProportional, base * 0.9, base * 1.1},
			{resilience.JitterFull, 0, base},
			{resilience.JitterEqual, base / 2, base},
		}
		for _, tt := range tests {
			c := cfg
			c.Jitter = tt.strategy
			minSeen, maxSeen, sum := math.Inf(1), math.Inf(-1), 0.0
			for range samples {
				d := float64(c.Delay(n, 0))
				if d < tt.lo || d > tt.hi {
					t.Fatalf("%v n=%d: %v outside [%v, %v]", tt.strategy, n, time.Duration(d), time.Duration(tt.lo), time.Duration(tt.hi))
				}
				minSeen, maxSeen, sum = min(minSeen, d), max(maxSeen, d), sum+d
			}
			width := tt.hi - tt.lo
			if minSeen > tt.lo+width*0.01 || maxSeen < tt.hi-width*0.01 {
				t.Errorf("%v n=%d: observed [%v, %v] does not cover [%v, %v]", tt.strategy, n, time.Duration(minSeen), time.Duration(maxSeen), time.Duration(tt.lo), time.Duration(tt.hi))
			}
			// uniform: standard error of the mean is width/sqrt(12*samples) ≈ 0.002*width.
			if mean, want := sum/samples, (tt.lo+tt.hi)/2; math.Abs(mean-want) > width*0.02 {
				t.Errorf("%v n=%d: mean %v, want about %v", tt.strategy, n, time.Duration(mean), time.Duration(want))
			}
		}
	}
	// Decorrelated: in [InitialDelay, min(3*prev, MaxDelay)], and it spreads at the cap.
	c := cfg
	c.Jitter = resilience.JitterDecorrelated
	prev, atCap := time.Duration(0), map[time.Duration]bool{}
	for i := range samples {
		d := c.Delay(uint32(i+1), prev)
		hi := min(3*max(prev, c.InitialDelay), c.MaxDelay)
		if d < c.InitialDelay || d > hi {
			t.Fatalf("decorrelated: %v outside [%v, %v] (prev %v)", d, c.InitialDelay, hi, prev)
		}
		if prev >= c.MaxDelay/3 {
			atCap[d/time.Millisecond] = true
		}
		prev = d
	}
	if len(atCap) < 100 {
		t.Errorf("decorrelated jitter at the cap produced only %d distinct delays", len(atCap))
	}
}

func TestJitterStrategyNames(t *testing.T) {
	for _, s := range []resilience.JitterStrategy{resilience.JitterProportional, resilience.JitterFull, resilience.JitterEqual, resilience.JitterDecorrelated} {
		got, err := resilience.ParseJitterStrategy(s.String())
		if err != nil || got != s {
			t.Errorf("ParseJitterStrategy(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := resilience.ParseJitterStrategy("none"); err == nil {
		t.Error("accepted unknown strategy")
	}
}

// FuzzDelay: for every valid config, every n and every random draw, the delay is
// never negative and never far above MaxDelay (proportional jitter may exceed it by
// JitterFactor/2), and the base never exceeds MaxDelay.
func FuzzDelay(f *testing.F) {
	f.Add(uint32(5), int64(500e6), int64(30e9), 2.0, 0.1, uint8(0), uint32(1), int64(0), 0.5)
	f.Add(uint32(0), int64(1), int64(math.MaxInt64), 1e300, 1.0, uint8(1), uint32(math.MaxUint32), int64(math.MaxInt64), 0.999)
	f.Add(uint32(0), int64(0), int64(0), 1.0, 0.0, uint8(3), uint32(1<<31), int64(-5), 0.0)
	f.Add(uint32(3), int64(math.MaxInt64), int64(math.MaxInt64), 1.0000001, 0.5, uint8(2), uint32(2), int64(1), 1.0)
	f.Fuzz(func(t *testing.T, attempts uint32, initial, maxDelay int64, mult, jitter float64, strategy uint8, n uint32, prev int64, u float64) {
		cfg := resilience.RetryConfig{
			MaxAttempts: attempts, InitialDelay: time.Duration(initial), MaxDelay: time.Duration(maxDelay),
			BackoffMultiplier: mult, JitterFactor: jitter, Jitter: resilience.JitterStrategy(strategy),
		}
		if cfg.Validate() != nil {
			return
		}
		base := cfg.BaseDelay(n)
		if base < 0 || base > cfg.MaxDelay || (n > 0 && base < min(cfg.InitialDelay, cfg.MaxDelay)) {
			t.Fatalf("BaseDelay(%d) = %v for %+v", n, base, cfg)
		}
		if n > 1 && base < cfg.BaseDelay(n-1) {
			t.Fatalf("BaseDelay(%d) = %v < BaseDelay(%d) = %v", n, base, n-1, cfg.BaseDelay(n-1))
		}
		d := cfg.DelayWithRandom(n, time.Duration(prev), u)
		limit := float64(cfg.MaxDelay) * (1 + cfg.JitterFactor/2)
		if d < 0 || float64(d) > limit+1 {
			t.Fatalf("DelayWithRandom(%d, %d, %v) = %v for %+v", n, prev, u, d, cfg)
		}
	})
}
