package resilience

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// RetryBudget is a token bucket shared by many retry loops that stops retry
// storms: every retry (not first attempts) costs one token, every success refunds
// SuccessRefund tokens, and MinPerSecond tokens trickle in regardless, so retries
// never stop completely. When many peers fail at once the bucket drains and
// further retries fail fast with ErrBudgetExhausted instead of multiplying load.
// It is a Guard and safe for concurrent use.
type RetryBudget struct {
	capacity, refund, perSecond float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// Budget defaults.
const (
	DefaultBudgetCapacity  = 100
	DefaultBudgetRefund    = 0.2
	DefaultBudgetPerSecond = 1.0
)

// BudgetConfig configures a RetryBudget.
type BudgetConfig struct {
	// Capacity is the bucket size, and its initial content. Default (0): 100.
	Capacity float64
	// SuccessRefund is added per success. Default (0): 0.2 (a retry per 5 successes).
	SuccessRefund float64
	// MinPerSecond tokens are added per second regardless. Default (0): 1.
	MinPerSecond float64
}

// NewRetryBudget returns a full budget.
func NewRetryBudget(cfg BudgetConfig) (*RetryBudget, error) {
	for _, f := range []struct {
		name string
		v    float64
	}{{"Capacity", cfg.Capacity}, {"SuccessRefund", cfg.SuccessRefund}, {"MinPerSecond", cfg.MinPerSecond}} {
		if !(f.v >= 0) || f.v > 1e12 {
			return nil, fmt.Errorf("%w: BudgetConfig.%s = %v must be in [0, 1e12]", ErrInvalidConfig, f.name, f.v)
		}
	}
	b := &RetryBudget{capacity: cfg.Capacity, refund: cfg.SuccessRefund, perSecond: cfg.MinPerSecond}
	if b.capacity == 0 {
		b.capacity = DefaultBudgetCapacity
	}
	if b.refund == 0 {
		b.refund = DefaultBudgetRefund
	}
	if b.perSecond == 0 {
		b.perSecond = DefaultBudgetPerSecond
	}
	b.tokens, b.last = b.capacity, time.Now()
	return b, nil
}

// refill adds the trickle since the last call. b.mu must be held.
func (b *RetryBudget) refill() {
	now := time.Now()
	b.tokens = min(b.capacity, b.tokens+now.Sub(b.last).Seconds()*b.perSecond)
	b.last = now
}

// Withdraw takes one token for a retry and reports whether there was one.
func (b *RetryBudget) Withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Deposit adds n tokens, up to the capacity.
func (b *RetryBudget) Deposit(n float64) {
	b.mu.Lock()
	b.refill()
	b.tokens = min(b.capacity, b.tokens+n)
	b.mu.Unlock()
}

// Tokens returns the tokens available now.
func (b *RetryBudget) Tokens() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	return b.tokens
}

// Before implements Guard: first attempts are free, retries cost a token.
func (b *RetryBudget) Before(_ context.Context, attempt uint32) error {
	if attempt > 1 && !b.Withdraw() {
		return ErrBudgetExhausted
	}
	return nil
}

// After implements Guard: a success refunds, a retry that was not made is returned.
func (b *RetryBudget) After(attempt uint32, err error) {
	switch {
	case err == nil:
		b.Deposit(b.refund)
	case attempt > 1 && noVerdict(err):
		b.Deposit(1)
	}
}
