package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

func TestCircuitBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes []string
		b, err := resilience.NewCircuitBreaker(resilience.BreakerConfig{
			FailureThreshold: 3, OpenTimeout: 10 * time.Second,
			OnStateChange: func(from, to resilience.BreakerState) { changes = append(changes, from.String()+"→"+to.String()) },
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := b.Allow(); err != nil {
				t.Fatalf("closed breaker refused attempt %d: %v", i, err)
			}
			b.Record(errTest)
		}
		if b.State() != resilience.BreakerOpen {
			t.Fatalf("state %v after 3 failures, want open", b.State())
		}
		if err := b.Allow(); !errors.Is(err, resilience.ErrCircuitOpen) {
			t.Fatalf("open breaker allowed: %v", err)
		}
		time.Sleep(10 * time.Second)
		if b.State() != resilience.BreakerHalfOpen {
			t.Fatalf("state %v after timeout, want half-open", b.State())
		}
		if err := b.Allow(); err != nil {
			t.Fatalf("half-open refused the probe: %v", err)
		}
		if err := b.Allow(); !errors.Is(err, resilience.ErrCircuitOpen) {
			t.Fatal("half-open allowed a second concurrent probe")
		}
		b.Record(errTest) // probe failed: open again
		if err := b.Allow(); !errors.Is(err, resilience.ErrCircuitOpen) {
			t.Fatal("failed probe did not reopen")
		}
		time.Sleep(10 * time.Second)
		if err := b.Allow(); err != nil {
			t.Fatal(err)
		}
		b.Record(context.Canceled) // no verdict: the probe slot is freed, still half-open
		if err := b.Allow(); err != nil {
			t.Fatalf("canceled probe kept the slot: %v", err)
		}
		b.Record(nil)
		if b.State() != resilience.BreakerClosed {
			t.Fatalf("state %v after successful probe", b.State())
		}
		want := "[closed→open open→half-open half-open→open open→half-open half-open→closed]"
		if got := fmt.Sprint(changes); got != want {
			t.Fatalf("changes %s, want %s", got, want)
		}
	})
	if _, err := resilience.NewCircuitBreaker(resilience.BreakerConfig{OpenTimeout: -1}); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Fatalf("negative timeout accepted: %v", err)
	}
}

func TestRetryStopsAtOpenBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := resilience.NewCircuitBreaker(resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: time.Hour})
		var calls atomic.Int32
		_, err := resilience.Retry(t.Context(), fastConfig(10), failing(100, errTest, &calls), resilience.WithGuards(b))
		if !errors.Is(err, resilience.ErrCircuitOpen) || !errors.Is(err, errTest) {
			t.Fatalf("err %v, want circuit open joined with the last error", err)
		}
		if calls.Load() != 2 {
			t.Fatalf("%d calls, want 2 (threshold)", calls.Load())
		}
	})
}

func TestRetryBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget, err := resilience.NewRetryBudget(resilience.BudgetConfig{Capacity: 5, SuccessRefund: 0.5, MinPerSecond: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		// Ten peers fail at once: together they may retry only 5 times.
		var calls atomic.Int32
		var wg sync.WaitGroup
		var exhausted atomic.Int32
		for range 10 {
			wg.Go(func() {
				_, err := resilience.Retry(t.Context(), fastConfig(5), failing(1000, errTest, &calls), resilience.WithGuards(budget))
				if errors.Is(err, resilience.ErrBudgetExhausted) {
					exhausted.Add(1)
				}
			})
		}
		wg.Wait()
		if calls.Load() != 15 { // 10 first attempts + 5 retries
			t.Fatalf("%d calls, want 15", calls.Load())
		}
		if exhausted.Load() < 9 {
			t.Fatalf("only %d loops stopped by the budget", exhausted.Load())
		}
		// Successes refund; time trickles.
		budget.Deposit(0) // refill point
		before := budget.Tokens()
		resilience.Retry(t.Context(), fastConfig(1), func(context.Context) (int, error) { return 1, nil }, resilience.WithGuards(budget))
		if got := budget.Tokens(); got < before+0.5-1e-9 {
			t.Fatalf("success refunded %v, want 0.5", got-before)
		}
		time.Sleep(10 * time.Second)
		if got := budget.Tokens(); got < before+1.5-1e-9 {
			t.Fatalf("trickle: %v tokens, want >= %v", got, before+1.5)
		}
	})
	for _, cfg := range []resilience.BudgetConfig{{Capacity: -1}, {SuccessRefund: -0.1}, {MinPerSecond: 1e300}} {
		if _, err := resilience.NewRetryBudget(cfg); !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("%+v accepted: %v", cfg, err)
		}
	}
}

// A guard refusing after another let the attempt through tells the first one
// that no attempt was made: a half-open breaker's probe slot is freed.
func TestGuardRefusalIsNotAnAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := resilience.NewCircuitBreaker(resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: time.Second})
		b.Allow()
		b.Record(errTest)
		time.Sleep(time.Second) // half-open
		budget, _ := resilience.NewRetryBudget(resilience.BudgetConfig{Capacity: 1, MinPerSecond: 1e-9})
		budget.Withdraw() // empty
		var calls atomic.Int32
		// attempt 1 is free with the budget; make it fail so that attempt 2 needs a token.
		_, err := resilience.Retry(t.Context(), fastConfig(5), failing(100, errTest, &calls), resilience.WithGuards(budget, b))
		if !errors.Is(err, resilience.ErrBudgetExhausted) {
			t.Fatalf("err %v", err)
		}
		// The probe that ran (attempt 1) reopened the breaker; nothing leaked a slot.
		if calls.Load() != 1 || b.State() != resilience.BreakerOpen {
			t.Fatalf("calls %d, breaker %v", calls.Load(), b.State())
		}
	})
}

func TestAdaptiveBackoffStretchesAndWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, err := resilience.NewAdaptiveBackoff(resilience.AdaptiveConfig{Window: 10, Threshold: 0.9, Stretch: 4, WakeSpread: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for range 9 {
			a.Record(false)
		}
		if a.Down() {
			t.Fatal("down before the window is full")
		}
		a.Record(false)
		if !a.Down() || a.Stretch(time.Second) != 4*time.Second {
			t.Fatalf("down=%v stretch=%v", a.Down(), a.Stretch(time.Second))
		}
		// A retry waiting out a long (stretched) delay is woken by a success elsewhere.
		cfg := fastConfig(3)
		cfg.InitialDelay, cfg.MaxDelay = time.Hour, time.Hour
		start := time.Now()
		done := make(chan time.Duration)
		var calls atomic.Int32
		go func() {
			resilience.Retry(t.Context(), cfg, failing(1, errTest, &calls), resilience.WithAdaptive(a))
			done <- time.Since(start)
		}()
		synctest.Wait() // the retry is asleep
		time.Sleep(time.Minute)
		a.Record(true) // the network is back
		elapsed := <-done
		if elapsed < time.Minute || elapsed > time.Minute+100*time.Millisecond {
			t.Fatalf("retry finished after %v, want within the 100ms spread after the 1m recovery", elapsed)
		}
		if a.Down() || a.Stretch(time.Second) != time.Second {
			t.Fatal("still down after a success")
		}
	})
	for _, cfg := range []resilience.AdaptiveConfig{{Window: -1}, {Threshold: 2}, {Stretch: 0.5}, {WakeSpread: -1}} {
		if _, err := resilience.NewAdaptiveBackoff(cfg); !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("%+v accepted: %v", cfg, err)
		}
	}
}

func TestPriorityGateOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := resilience.NewPriorityGate(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Acquire(t.Context(), resilience.PriorityOther); err != nil {
			t.Fatal(err)
		}
		var order []resilience.Priority
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, p := range []resilience.Priority{resilience.PriorityOther, resilience.PriorityDHTPeer, resilience.PriorityBootstrap, resilience.PriorityDHTPeer} {
			wg.Go(func() {
				if err := g.Acquire(t.Context(), p); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order = append(order, p)
				mu.Unlock()
				g.Release()
			})
			synctest.Wait() // queue in this order
		}
		// A waiter that gives up leaves the queue without taking a slot.
		ctx, cancel := context.WithCancel(t.Context())
		gaveUp := make(chan error)
		go func() { gaveUp <- g.Acquire(ctx, resilience.PriorityBootstrap) }()
		synctest.Wait()
		cancel()
		if err := <-gaveUp; !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled Acquire: %v", err)
		}
		g.Release()
		wg.Wait()
		want := "[bootstrap dht-peer dht-peer other]"
		if got := fmt.Sprint(order); got != want {
			t.Fatalf("order %s, want %s", got, want)
		}
		// All slots are back.
		if err := g.Acquire(t.Context(), resilience.PriorityOther); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := resilience.NewPriorityGate(0); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Fatal("zero slots accepted")
	}
}

func TestPeerRateLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := resilience.NewPeerRateLimiter(1, 2, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !l.Allow("a") || !l.Allow("a") || l.Allow("a") {
			t.Fatal("burst of 2 not enforced")
		}
		if !l.Allow("b") {
			t.Fatal("peers share a bucket")
		}
		start := time.Now()
		var calls atomic.Int32
		resilience.Retry(t.Context(), resilience.RetryConfig{MaxAttempts: 3, BackoffMultiplier: 1}, failing(100, errTest, &calls), resilience.WithGuards(l.Guard("a")))
		if elapsed := time.Since(start); elapsed < 3*time.Second {
			t.Fatalf("3 zero-delay attempts to a drained peer took %v, want >= 3s at 1/s", elapsed)
		}
		// Bounded memory: a flood of ids.
		for i := range 100 {
			l.Allow(fmt.Sprint("flood-", i))
			if l.Len() > 3 {
				t.Fatalf("limiter holds %d peers, max 3", l.Len())
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := l.Wait(ctx, "a"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait on canceled ctx: %v", err)
		}
	})
	if _, err := resilience.NewPeerRateLimiter(0, 1, 0); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Fatal("zero rate accepted")
	}
}

// One live peer among many dead ones: its successes must not wake the dead
// peers' retries over and over (each Retry accepts one wake-up).
func TestAdaptiveLivePeerDoesNotDefeatBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := resilience.NewAdaptiveBackoff(resilience.AdaptiveConfig{})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		cfg := resilience.RetryConfig{MaxAttempts: 0, InitialDelay: time.Hour, MaxDelay: time.Hour, BackoffMultiplier: 2}
		var calls atomic.Int32
		var wg sync.WaitGroup
		for range 19 {
			wg.Go(func() {
				resilience.Retry(ctx, cfg, failing(1<<30, errTest, &calls), resilience.WithAdaptive(a))
			})
		}
		for ctx.Err() == nil {
			a.Record(true) // the live peer
			time.Sleep(10 * time.Second)
		}
		wg.Wait()
		if n := calls.Load(); n > 2*19 {
			t.Fatalf("%d attempts of dead peers in 10 minutes with a 1h backoff, want at most %d", n, 2*19)
		}
	})
}
