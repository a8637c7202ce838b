package resilience

import "sync"

// peerStore is the bounded per-peer store of the per-peer guards
// (PeerRateLimiter, CircuitBreaker): at most max entries; when a new peer
// would exceed it, entries in their resting state (idle reports true: a full
// token bucket, a closed breaker without failures) are dropped first — a new
// one would be the same — and then any, so memory stays bounded whatever peer
// IDs an attacker makes up. It is safe for concurrent use.
type peerStore[T any] struct {
	max   int
	newT  func() T
	idle  func(T) bool
	mu    sync.Mutex
	peers map[string]T
}

func newPeerStore[T any](maxPeers int, newT func() T, idle func(T) bool) *peerStore[T] {
	return &peerStore[T]{max: maxPeers, newT: newT, idle: idle, peers: make(map[string]T)}
}

// get returns id's entry, creating it.
func (s *peerStore[T]) get(id string) T {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.peers[id]
	if !ok {
		if len(s.peers) >= s.max {
			s.evictLocked()
		}
		v = s.newT()
		s.peers[id] = v
	}
	return v
}

// lookup returns id's entry without creating one.
func (s *peerStore[T]) lookup(id string) (T, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.peers[id]
	return v, ok
}

func (s *peerStore[T]) evictLocked() {
	for id, v := range s.peers {
		if s.idle(v) {
			delete(s.peers, id)
		}
	}
	for id := range s.peers {
		if len(s.peers) < s.max {
			break
		}
		delete(s.peers, id)
	}
}

func (s *peerStore[T]) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peers)
}
