// Package resilience is the pure retry policy of go-libp2p-resilience: it imports
// no libp2p package.
//
//   - RetryConfig: the seed's fields and defaults, profiles (DefaultRetryConfig,
//     ForWebRTC, ForDHTBootstrap, ForDHTPeer), JSON in the seed's format, Validate.
//   - Backoff: RetryConfig.BaseDelay and Delay compute the delay before retry n,
//     min(InitialDelay * BackoffMultiplier^(n-1), MaxDelay), overflow-safe, with a
//     choice of JitterStrategy.
//   - ConnectionTracker: the per-connection state machine (Idle, Connecting,
//     Connected, Retrying, Failed, Exhausted). Not safe for concurrent use.
//   - ConnectionManager: all trackers, safe for concurrent use, updated in place so
//     no update is lost, bounded by an idle TTL and a tracker cap.
//   - Retry and RetryTracked: context-aware retry loops; Permanent, RetryAfter,
//     ErrExhausted.
//   - Guards, run around every attempt of a retry loop (WithGuards): a shared
//     RetryBudget, a per-peer PeerRateLimiter and CircuitBreaker (each a bounded
//     per-peer store), a PriorityGate; and AdaptiveBackoff (WithAdaptive).
//   - MetricsTracer: optional Prometheus metrics (NewMetricsTracer).
//
// Every constructor takes functional options (NewConnectionManager's
// ManagerOption, NewRetryBudget's BudgetOption, ...) that validate their value:
// a bad one makes the constructor, or Retry, fail with an error wrapping
// ErrInvalidConfig that names the option. Zero is a value, not "the default":
// each option's doc says its default.
//
// Delays of the profiles (un-jittered base; retry n waits base(n) after attempt n fails):
//
//	profile            attempts  retry 1  retry 2  retry 3  retry 4  retry 5  ...  cap   jitter
//	DefaultRetryConfig 5         500ms    1s       2s       4s       (8s)          30s   ±5%
//	ForWebRTC          3         1s       2s       (4s)                            15s   ±10%
//	ForDHTBootstrap    5         2s       4s       8s       16s      (32s)         60s   ±7.5%
//	ForDHTPeer         3         1s       2s       (4s)                            30s   ±5%
//
// Values in parentheses are reached only with more attempts (MaxAttempts counts the
// first attempt, so 5 attempts means 4 retries).
//
// Time comes from the time package; tests of code built on this package can run it
// in virtual time with testing/synctest, as this package's own tests do.
package resilience
