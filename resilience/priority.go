package resilience

import (
	"context"
	"fmt"
	"sync"
)

// Priority orders retry attempts competing for a PriorityGate.
type Priority uint8

// Priorities, lowest first.
const (
	PriorityOther     Priority = iota // anything else
	PriorityDHTPeer                   // ordinary DHT peers
	PriorityKept                      // peers the application keeps connected
	PriorityBootstrap                 // bootstrap peers: the node cannot do without them
	priorityCount
)

func (p Priority) String() string {
	switch p {
	case PriorityOther:
		return "other"
	case PriorityDHTPeer:
		return "dht-peer"
	case PriorityKept:
		return "kept"
	case PriorityBootstrap:
		return "bootstrap"
	}
	return fmt.Sprintf("Priority(%d)", uint8(p))
}

// PriorityGate bounds the number of attempts in flight; when it is full, waiting
// attempts are let in highest priority first, first come first served within a
// priority. It is safe for concurrent use.
type PriorityGate struct {
	mu      sync.Mutex
	free    int
	waiters [priorityCount][]chan struct{}
}

// NewPriorityGate returns a gate admitting at most slots attempts at once.
func NewPriorityGate(slots int) (*PriorityGate, error) {
	if slots <= 0 {
		return nil, fmt.Errorf("%w: PriorityGate slots = %d must be positive", ErrInvalidConfig, slots)
	}
	return &PriorityGate{free: slots}, nil
}

// Acquire waits for a slot; it returns context.Cause(ctx) if ctx ends first.
// Every nil return must be paired with one Release. A priority that is not one
// of the Priority constants is an error wrapping ErrInvalidConfig.
func (g *PriorityGate) Acquire(ctx context.Context, p Priority) error {
	if p >= priorityCount {
		return fmt.Errorf("%w: PriorityGate.Acquire: priority %v is not one of the Priority constants", ErrInvalidConfig, p)
	}
	g.mu.Lock()
	if g.free > 0 && g.nobodyWaiting() {
		g.free--
		g.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	g.waiters[p] = append(g.waiters[p], ready)
	g.mu.Unlock()

	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		select {
		case <-ready: // handed a slot just now: pass it on
			g.releaseLocked()
		default:
			q := g.waiters[p]
			for i, c := range q {
				if c == ready {
					g.waiters[p] = append(q[:i:i], q[i+1:]...)
					break
				}
			}
		}
		return context.Cause(ctx)
	}
}

// Release returns a slot, handing it to the highest-priority waiter.
func (g *PriorityGate) Release() {
	g.mu.Lock()
	g.releaseLocked()
	g.mu.Unlock()
}

func (g *PriorityGate) releaseLocked() {
	for p := priorityCount - 1; ; p-- {
		if q := g.waiters[p]; len(q) > 0 {
			close(q[0])
			g.waiters[p] = q[1:]
			return
		}
		if p == 0 {
			break
		}
	}
	g.free++
}

func (g *PriorityGate) nobodyWaiting() bool {
	for _, q := range g.waiters {
		if len(q) > 0 {
			return false
		}
	}
	return true
}

// Guard returns a Guard holding a slot of g at priority p for each attempt.
func (g *PriorityGate) Guard(p Priority) Guard { return priorityGuard{g, p} }

type priorityGuard struct {
	g *PriorityGate
	p Priority
}

func (pg priorityGuard) Before(ctx context.Context, _ uint32) error { return pg.g.Acquire(ctx, pg.p) }
func (pg priorityGuard) After(uint32, error)                        { pg.g.Release() }
