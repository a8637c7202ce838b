package resilience

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// RetryBudget is a token bucket shared by many retry loops that stops retry
// storms: every retry (not first attempts) costs one token, every success refunds
// WithSuccessRefund tokens, and WithBudgetRefill tokens a second trickle in
// regardless, so retries never stop completely. When many peers fail at once the bucket drains and
// further retries fail fast with ErrBudgetExhausted instead of multiplying load.
// It is a Guard and safe for concurrent use.
type RetryBudget struct {
	capacity, refund, perSecond float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

type budgetConfig struct {
	capacity, refund, perSecond float64
}

// BudgetOption configures NewRetryBudget.
type BudgetOption func(*budgetConfig) error

func budgetValue(name string, v float64) error {
	if !(v >= 0) || v > 1e12 {
		return fmt.Errorf("%w: %s(%v): must be in [0, 1e12]", ErrInvalidConfig, name, v)
	}
	return nil
}

// WithBudgetCapacity sets the bucket's size, which it starts full with.
// Default: 100 tokens. Must be in [1, 1e12].
func WithBudgetCapacity(tokens float64) BudgetOption {
	return func(c *budgetConfig) error {
		if err := budgetValue("WithBudgetCapacity", tokens); err != nil {
			return err
		}
		if tokens < 1 {
			return fmt.Errorf("%w: WithBudgetCapacity(%v): must be >= 1 (a retry costs one token)", ErrInvalidConfig, tokens)
		}
		c.capacity = tokens
		return nil
	}
}

// WithSuccessRefund sets the tokens each success refunds. Default: 0.2. 0 is
// allowed (successes refund nothing). Must be in [0, 1e12].
func WithSuccessRefund(tokens float64) BudgetOption {
	return func(c *budgetConfig) error {
		if err := budgetValue("WithSuccessRefund", tokens); err != nil {
			return err
		}
		c.refund = tokens
		return nil
	}
}

// WithBudgetRefill sets the tokens that trickle in per second regardless of
// outcomes, so that retries never stop for good. Default: 1. 0 is allowed
// (only successes refill). Must be in [0, 1e12].
func WithBudgetRefill(perSecond float64) BudgetOption {
	return func(c *budgetConfig) error {
		if err := budgetValue("WithBudgetRefill", perSecond); err != nil {
			return err
		}
		c.perSecond = perSecond
		return nil
	}
}

// NewRetryBudget returns a full RetryBudget. An invalid option is an error
// wrapping ErrInvalidConfig that names it.
func NewRetryBudget(opts ...BudgetOption) (*RetryBudget, error) {
	cfg := budgetConfig{capacity: 100, refund: 0.2, perSecond: 1}
	if err := apply(&cfg, opts); err != nil {
		return nil, err
	}
	b := &RetryBudget{capacity: cfg.capacity, refund: cfg.refund, perSecond: cfg.perSecond}
	b.tokens, b.last = b.capacity, time.Now()
	return b, nil
}

func (b *RetryBudget) refill() {
	now := time.Now()
	b.tokens = min(b.capacity, b.tokens+now.Sub(b.last).Seconds()*b.perSecond)
	b.last = now
}

// withdraw takes one token for a retry and reports whether there was one.
func (b *RetryBudget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// deposit adds n tokens, up to the capacity.
func (b *RetryBudget) deposit(n float64) {
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
	if attempt > 1 && !b.withdraw() {
		return ErrBudgetExhausted
	}
	return nil
}

// After implements Guard: a success refunds, a retry that was not made is returned.
func (b *RetryBudget) After(attempt uint32, err error) {
	switch {
	case err == nil:
		b.deposit(b.refund)
	case attempt > 1 && noVerdict(err):
		b.deposit(1)
	}
}
