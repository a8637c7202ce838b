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
		b, err := resilience.NewCircuitBreaker(resilience.WithFailureThreshold(3), resilience.WithOpenTimeout(10*time.Second),
			resilience.WithOnStateChange(func(id string, from, to resilience.BreakerState) {
				changes = append(changes, id+":"+from.String()+"→"+to.String())
			}))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := b.Allow("a"); err != nil {
				t.Fatalf("closed breaker refused attempt %d: %v", i, err)
			}
			b.Record("a", errTest)
		}
		if b.State("a") != resilience.BreakerOpen {
			t.Fatalf("state %v after 3 failures, want open", b.State("a"))
		}
		if err := b.Allow("a"); !errors.Is(err, resilience.ErrCircuitOpen) {
			t.Fatalf("open breaker allowed: %v", err)
		}
		if err := b.Allow("b"); err != nil || b.State("b") != resilience.BreakerClosed {
			t.Fatalf("another peer's breaker is not closed: %v, %v", err, b.State("b"))
		}
		time.Sleep(10 * time.Second)
		if b.State("a") != resilience.BreakerHalfOpen {
			t.Fatalf("state %v after timeout, want half-open", b.State("a"))
		}
		if err := b.Allow("a"); err != nil {
			t.Fatalf("half-open refused the probe: %v", err)
		}
		if err := b.Allow("a"); !errors.Is(err, resilience.ErrCircuitOpen) {
			t.Fatal("half-open allowed a second concurrent probe")
		}
		b.Record("a", errTest) // probe failed: open again
		if err := b.Allow("a"); !errors.Is(err, resilience.ErrCircuitOpen) {
			t.Fatal("failed probe did not reopen")
		}
		time.Sleep(10 * time.Second)
		if err := b.Allow("a"); err != nil {
			t.Fatal(err)
		}
		b.Record("a", context.Canceled) // no verdict: the probe slot is freed, still half-open
		if err := b.Allow("a"); err != nil {
			t.Fatalf("canceled probe kept the slot: %v", err)
		}
		b.Record("a", nil)
		if b.State("a") != resilience.BreakerClosed {
			t.Fatalf("state %v after successful probe", b.State("a"))
		}
		want := "[a:closed→open a:open→half-open a:half-open→open a:open→half-open a:half-open→closed]"
		if got := fmt.Sprint(changes); got != want {
			t.Fatalf("changes %s, want %s", got, want)
		}
	})
	for _, o := range []resilience.BreakerOption{resilience.WithOpenTimeout(-1), resilience.WithFailureThreshold(0),
		resilience.WithMaxBreakerPeers(0), resilience.WithOnStateChange(nil), nil} {
		if _, err := resilience.NewCircuitBreaker(o); !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("bad option accepted: %v", err)
		}
	}
}

// TestCircuitBreakerStoreIsBounded: breakers of many peers stay within
// WithMaxBreakerPeers; an open breaker survives a flood of new peers while
// closed ones can be forgotten.
func TestCircuitBreakerStoreIsBounded(t *testing.T) {
	b, err := resilience.NewCircuitBreaker(resilience.WithFailureThreshold(1), resilience.WithOpenTimeout(time.Hour),
		resilience.WithMaxBreakerPeers(10))
	if err != nil {
		t.Fatal(err)
	}
	b.Record("down", errTest)
	for i := range 1000 {
		id := fmt.Sprint("peer-", i)
		if err := b.Allow(id); err != nil {
			t.Fatal(err)
		}
		b.Record(id, nil)
	}
	if n := b.Len(); n > 10 {
		t.Fatalf("%d breakers kept, cap 10", n)
	}
	if b.State("down") != resilience.BreakerOpen {
		t.Fatal("the open breaker was forgotten while closed ones could go")
	}
}

func TestRetryStopsAtOpenBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := resilience.NewCircuitBreaker(resilience.WithFailureThreshold(2), resilience.WithOpenTimeout(time.Hour))
		var calls atomic.Int32
		_, err := resilience.Retry(t.Context(), fastConfig(10), failing(100, errTest, &calls), resilience.WithGuards(b.Guard("p")))
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
		budget, err := resilience.NewRetryBudget(resilience.WithBudgetCapacity(5), resilience.WithSuccessRefund(0.5), resilience.WithBudgetRefill(0.1))
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
	for _, o := range []resilience.BudgetOption{resilience.WithBudgetCapacity(-1), resilience.WithBudgetCapacity(0.5),
		resilience.WithSuccessRefund(-0.1), resilience.WithBudgetRefill(1e300), nil} {
		if _, err := resilience.NewRetryBudget(o); !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("bad option accepted: %v", err)
		}
	}
	// Zero is a value, not "the default": no refund, no refill.
	b, err := resilience.NewRetryBudget(resilience.WithBudgetCapacity(1), resilience.WithSuccessRefund(0), resilience.WithBudgetRefill(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Before(context.Background(), 2); err != nil { // a retry takes the one token
		t.Fatal(err)
	}
	b.After(2, nil)
	if got := b.Tokens(); got != 0 {
		t.Errorf("%v tokens after a success with WithSuccessRefund(0) and WithBudgetRefill(0), want 0", got)
	}
}

// A guard refusing after another let the attempt through tells the first one
// that no attempt was made: a half-open breaker's probe slot is freed.
func TestGuardRefusalIsNotAnAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, _ := resilience.NewCircuitBreaker(resilience.WithFailureThreshold(1), resilience.WithOpenTimeout(time.Second))
		b.Allow("p")
		b.Record("p", errTest)
		time.Sleep(time.Second) // half-open
		budget, _ := resilience.NewRetryBudget(resilience.WithBudgetCapacity(1), resilience.WithBudgetRefill(1e-9))
		_ = budget.Before(t.Context(), 2) // a retry's token: empty now
		var calls atomic.Int32
		// attempt 1 is free with the budget; make it fail so that attempt 2 needs a token.
		_, err := resilience.Retry(t.Context(), fastConfig(5), failing(100, errTest, &calls), resilience.WithGuards(budget, b.Guard("p")))
		if !errors.Is(err, resilience.ErrBudgetExhausted) {
			t.Fatalf("err %v", err)
		}
		// The probe that ran (attempt 1) reopened the breaker; nothing leaked a slot.
		if calls.Load() != 1 || b.State("p") != resilience.BreakerOpen {
			t.Fatalf("calls %d, breaker %v", calls.Load(), b.State("p"))
		}
	})
}

func TestAdaptiveBackoffStretchesAndWakes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, err := resilience.NewAdaptiveBackoff(resilience.WithAdaptiveWindow(10), resilience.WithAdaptiveThreshold(0.9),
			resilience.WithAdaptiveStretch(4), resilience.WithWakeSpread(100*time.Millisecond))
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
		if !a.Down() {
			t.Fatal("not down after a whole window of failures")
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
		if a.Down() {
			t.Fatal("still down after a success")
		}
	})
	for _, o := range []resilience.AdaptiveOption{resilience.WithAdaptiveWindow(-1), resilience.WithAdaptiveThreshold(2),
		resilience.WithAdaptiveThreshold(0), resilience.WithAdaptiveStretch(0.5), resilience.WithWakeSpread(-1), nil} {
		if _, err := resilience.NewAdaptiveBackoff(o); !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("bad option accepted: %v", err)
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
		l, err := resilience.NewPeerRateLimiter(resilience.WithPeerRate(1, 2), resilience.WithMaxRateLimitedPeers(3))
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
	for _, o := range []resilience.RateLimitOption{resilience.WithPeerRate(0, 1), resilience.WithPeerRate(1, 0),
		resilience.WithMaxRateLimitedPeers(0), nil} {
		if _, err := resilience.NewPeerRateLimiter(o); !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("bad option accepted: %v", err)
		}
	}
}

// One live peer among many dead ones: its successes must not wake the dead
// peers' retries over and over (each Retry accepts one wake-up).
func TestAdaptiveLivePeerDoesNotDefeatBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _ := resilience.NewAdaptiveBackoff()
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
