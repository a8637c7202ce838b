package resilience

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// JitterStrategy selects how a delay is randomized around the exponential base.
//
// With base = min(InitialDelay * BackoffMultiplier^(n-1), MaxDelay) for retry n:
//
//	strategy            delay                                  use it when
//	JitterProportional  base * (1 ± JitterFactor/2)            few clients; you want the seed's predictable table
//	JitterFull          uniform [0, base]                      many clients fail together (fewest calls, fastest drain)
//	JitterEqual         base/2 + uniform [0, base/2]           you want jitter but never a near-zero wait
//	JitterDecorrelated  uniform [InitialDelay, min(3*prev, MaxDelay)], prev >= InitialDelay
//	                                                           long outages; delays wander instead of marching in step
//
// The seed's proportional band (±5% by default) barely separates clients that failed at
// the same moment: they retry in near lock-step. BenchmarkThunderingHerd shows the
// difference under contention.
type JitterStrategy uint8

// Jitter strategies.
const (
	JitterProportional JitterStrategy = iota
	JitterFull
	JitterEqual
	JitterDecorrelated
	jitterStrategyCount
)

var jitterNames = [...]string{"proportional", "full", "equal", "decorrelated"}

// String returns the strategy's name as used in JSON and flags.
func (j JitterStrategy) String() string {
	if j < jitterStrategyCount {
		return jitterNames[j]
	}
	return fmt.Sprintf("JitterStrategy(%d)", uint8(j))
}

// ParseJitterStrategy parses a name returned by String.
func ParseJitterStrategy(s string) (JitterStrategy, error) {
	for i, name := range jitterNames {
		if s == name {
			return JitterStrategy(i), nil
		}
	}
	return 0, fmt.Errorf("%w: jitter = %q is not one of proportional, full, equal, decorrelated", ErrInvalidConfig, s)
}

// BaseDelay returns the un-jittered delay before retry n (n = 1 is the first retry,
// after the first failure): min(InitialDelay * BackoffMultiplier^(n-1), MaxDelay).
// It never overflows, goes negative or becomes NaN for a valid config and any n;
// n = 0 is treated as 1.
func (c RetryConfig) BaseDelay(n uint32) time.Duration {
	if n <= 1 || c.InitialDelay <= 0 || c.BackoffMultiplier <= 1 {
		return min(max(c.InitialDelay, 0), max(c.MaxDelay, 0))
	}
	// Exponentiation by squaring in float64, stopping as soon as the result must
	// reach the cap: at most 32 rounds for any n, and no overflow, because a
	// factor above the cap (+Inf included) ends the loop before it is used.
	capf := float64(c.MaxDelay)
	f, b, e := float64(c.InitialDelay), c.BackoffMultiplier, n-1
	for {
		if e&1 == 1 {
			if f *= b; f >= capf {
				return c.MaxDelay
			}
		}
		if e >>= 1; e == 0 {
			return time.Duration(f)
		}
		if b *= b; b >= capf { // f >= 1ns, so f * b would pass the cap
			return c.MaxDelay
		}
	}
}

// Delay returns the delay before retry n with the configured jitter applied, drawing
// randomness from math/rand/v2's global source. prev is the delay returned for the
// previous retry (0 for the first); only JitterDecorrelated uses it.
// It is safe for concurrent use.
func (c RetryConfig) Delay(n uint32, prev time.Duration) time.Duration {
	return c.DelayWithRandom(n, prev, rand.Float64())
}

// DelayWithRandom is Delay with the random draw u in [0, 1) supplied by the caller,
// for deterministic tests and custom sources. u outside [0, 1) is clamped.
func (c RetryConfig) DelayWithRandom(n uint32, prev time.Duration, u float64) time.Duration {
	if !(u >= 0) { // also catches NaN
		u = 0
	} else if u >= 1 {
		u = math.Nextafter(1, 0)
	}
	base := c.BaseDelay(n)
	switch c.Jitter {
	case JitterFull:
		return scale(base, u)
	case JitterEqual:
		half := base / 2
		return half + scale(base-half, u)
	case JitterDecorrelated:
		lo := max(c.InitialDelay, 0)
		if prev < lo {
			prev = lo // the first retry grows from InitialDelay
		}
		hi := c.MaxDelay
		if prev <= hi/3 {
			hi = 3 * prev
		}
		if hi < lo {
			hi = lo
		}
		return lo + scale(hi-lo, u)
	default: // JitterProportional: base * (1 + (u - 0.5) * JitterFactor)
		j := c.JitterFactor
		if !(j > 0) {
			return base
		}
		if j > 1 {
			j = 1
		}
		f := float64(base) * (1 + (u-0.5)*j)
		if f >= math.MaxInt64 { // only reachable with MaxDelay near the Duration limit
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(f)
	}
}

// scale returns d * u for u in [0, 1) without overflow.
func scale(d time.Duration, u float64) time.Duration {
	return time.Duration(float64(d) * u)
}
