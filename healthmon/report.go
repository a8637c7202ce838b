package healthmon

import (
	"fmt"
	"time"
)

// Status is the health of a node, judged on the routing-table peers the host is
// connected to (TablePeersConnected in HealthReport):
//
//	Unhealthy   0 connected routing-table peers: cut off from the DHT
//	Degraded    1 .. MinPeers-1
//	Healthy     MinPeers or more
//
// Table entries of peers the host is not connected to do not count: kad-dht keeps
// the entries of unreachable peers until a query or its periodic refresh (10
// minutes by default) evicts them, so an isolated node's table can look full.
// Connections to peers outside the table do not count either: a node full of
// non-DHT connections is not healthy.
type Status int

const (
	// StatusUnknown is the status before the first check.
	StatusUnknown Status = iota
	// Unhealthy: no connected routing-table peer.
	Unhealthy
	// Degraded: some connected routing-table peers, fewer than MinPeers.
	Degraded
	// Healthy: at least MinPeers connected routing-table peers.
	Healthy
)

// String returns "unknown", "unhealthy", "degraded" or "healthy".
func (s Status) String() string {
	switch s {
	case StatusUnknown:
		return "unknown"
	case Unhealthy:
		return "unhealthy"
	case Degraded:
		return "degraded"
	case Healthy:
		return "healthy"
	default:
		return fmt.Sprintf("Status(%d)", int(s))
	}
}

// statusOf classifies a count of connected routing-table peers.
func statusOf(tablePeersConnected, minPeers int) Status {
	switch {
	case tablePeersConnected >= minPeers:
		return Healthy
	case tablePeersConnected > 0:
		return Degraded
	default:
		return Unhealthy
	}
}

// HealthReport is the result of one check: the seed's fields plus the routing-table
// counts and the status.
type HealthReport struct {
	// Status is the reported status, damped by the hysteresis (WithHysteresis).
	Status Status
	// Observed is the status this check found, before damping.
	Observed Status
	// IsHealthy is Status == Healthy.
	IsHealthy bool
	// RoutingTableSize is the number of entries in the routing table.
	RoutingTableSize int
	// TablePeersConnected is the number of routing-table peers the host is
	// connected to; the status is judged on it.
	TablePeersConnected int
	// ConnectedPeers is the number of peers the host is connected to, in the
	// routing table or not.
	ConnectedPeers int
	// MinPeersThreshold is MinPeers (WithMinPeers).
	MinPeersThreshold int
	// FailedConnections is the number of trackers in state Failed or Exhausted in
	// the ConnectionManager (WithManager); 0 without one.
	FailedConnections int
	// RecoveringConnections is the number of trackers in state Retrying or
	// Connecting in the ConnectionManager; 0 without one.
	RecoveringConnections int
	// Timestamp is when the check ran.
	Timestamp time.Time
}

// damper turns observed statuses into the reported status (see WithHysteresis).
// Not safe for concurrent use.
type damper struct {
	healthyFor, minDwell time.Duration

	reported     Status
	changedAt    time.Time // when reported last changed
	dir          int       // direction of the last change: +1 better, -1 worse, 0 none yet
	healthySince time.Time // start of the current run of healthy observations; zero if none
	lostAt       time.Time // when the reported status last got worse; zero if never
	healthySeen  bool      // a healthy observation since lostAt
}

// observe records an observation made at now. It returns the reported status
// before and after, and, when the observation calls for a change the hysteresis
// holds back, the time at which to check again (zero otherwise).
func (d *damper) observe(now time.Time, obs Status) (from, to Status, recheckAt time.Time) {
	from = d.reported
	firstHealthy := obs == Healthy && !d.healthySeen
	if obs == Healthy {
		d.healthySeen = true
		if d.healthySince.IsZero() {
			d.healthySince = now
		}
	} else {
		d.healthySince = time.Time{}
	}
	if d.reported == StatusUnknown { // first check: nothing to flap from
		d.reported, d.changedAt = obs, now
		return from, obs, time.Time{}
	}
	if obs == d.reported {
		return from, from, time.Time{}
	}
	dir := 1
	if obs < d.reported {
		dir = -1
	}
	ready := now
	// The first healthy observation after a loss reported at least minDwell
	// ago is a recovery from a state the node had just lost, not a flap (a
	// flapping link shows healthy observations while the loss is held or
	// reported): no healthyFor wait. A refill passes through Degraded on its
	// way, so the rule looks at the loss, not at the last change.
	recovered := firstHealthy && !d.lostAt.IsZero() && !now.Before(d.lostAt.Add(d.minDwell))
	if obs == Healthy && !recovered {
		ready = d.healthySince.Add(d.healthyFor)
	}
	if d.dir != 0 && dir != d.dir { // a reversal: flapping unless minDwell has passed
		ready = later(ready, d.changedAt.Add(d.minDwell))
	}
	if now.Before(ready) {
		return from, from, ready
	}
	d.reported, d.changedAt, d.dir = obs, now, dir
	if dir == -1 {
		d.lostAt, d.healthySeen = now, false
	}
	return from, obs, time.Time{}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
