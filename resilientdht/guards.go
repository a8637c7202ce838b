package resilientdht

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/chiral-network/go-libp2p-resilience/resilience"
)

// retryGuards protect the network from this node's retries when many peers
// fail at once: a retry budget shared by all peers (retries fail fast once
// it is spent), a per-peer attempt rate limit, and adaptive backoff (delays
// stretch while nearly every attempt fails; waiting retries wake when the
// network is back). See WithoutRetryGuards.
type retryGuards struct {
	budget   *resilience.RetryBudget
	limit    *resilience.PeerRateLimiter
	adaptive *resilience.AdaptiveBackoff
}

func newRetryGuards() (*retryGuards, error) {
	budget, err := resilience.NewRetryBudget() // 100 tokens, 0.2 per success, 1/s
	if err != nil {
		return nil, fmt.Errorf("resilientdht: retry budget: %w", err)
	}
	limit, err := resilience.NewPeerRateLimiter(resilience.WithPeerRate(1, 3)) // 1 attempt/s per peer, bursts of 3
	if err != nil {
		return nil, fmt.Errorf("resilientdht: per-peer rate limit: %w", err)
	}
	adaptive, err := resilience.NewAdaptiveBackoff()
	if err != nil {
		return nil, fmt.Errorf("resilientdht: adaptive backoff: %w", err)
	}
	return &retryGuards{budget, limit, adaptive}, nil
}

func (g *retryGuards) options(id peer.ID) []resilience.RetryOption {
	return []resilience.RetryOption{
		resilience.WithGuards(g.budget, g.limit.Guard(id.String())),
		resilience.WithAdaptive(g.adaptive),
	}
}
