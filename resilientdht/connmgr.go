package resilientdht

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// The connection limits of the resilient-dht binary and of the simulated
// networks (internal/simnet): kubo's defaults (Swarm.ConnMgr). Above
// DefaultConnsHigh connections the connection manager closes the least
// valuable down to DefaultConnsLow; a connection younger than
// DefaultConnsGrace is never closed. kad-dht protects its two closest
// buckets' peers and tags the others, so trimming closes connections to
// peers outside the routing table first: a node's health (connected
// routing-table peers) survives it.
//
// The binary ran with 100/400 (and go-libp2p's 1-minute grace) before:
// below 400 nothing is trimmed, so a node kept every connection it made
// (142 per node in a 300-node simulation, against 76 with these limits),
// and 1,000 simulated nodes did not fit in 24 GiB (README, "Simulated
// networks").
const (
	DefaultConnsLow   = 32
	DefaultConnsHigh  = 96
	DefaultConnsGrace = 20 * time.Second
)

// NewConnManager returns go-libp2p's connection manager with these
// watermarks and DefaultConnsGrace, for libp2p.ConnectionManager. low must
// be at least 1 and at most high.
func NewConnManager(low, high int) (*connmgr.BasicConnMgr, error) {
	if low < 1 || low > high {
		return nil, fmt.Errorf("resilientdht: connection limits %d/%d: want 1 <= low <= high", low, high)
	}
	return connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(DefaultConnsGrace))
}
