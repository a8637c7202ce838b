// Package healthmon keeps a DHT node's routing table above a minimum size: it
// checks the table, reports the node's health and drives recovery while the node
// is not healthy (the seed's DhtHealthMonitor).
//
//	m, err := healthmon.New(h, bootstrap.DHT(d),       // or bootstrap.DualDHT(d)
//		healthmon.WithRecoverer(bootstrapper),          // *bootstrap.Bootstrapper
//		healthmon.WithManager(dialerHost.Manager()))
//	if err != nil { ... }
//	if err := m.Start(); err != nil { ... }
//	defer m.Close()
//	for rep := range m.Subscribe() { ... }              // or EvtHealthChanged on h.EventBus()
//
// # Health
//
// Health is judged on the routing-table peers the host is connected to, not on
// the table's size alone (kad-dht keeps entries of unreachable peers for minutes)
// nor on connections alone (non-DHT peers do not make a node healthy): none is
// Unhealthy, fewer than MinPeers (default 4) is Degraded, MinPeers or more is
// Healthy. A check runs every CheckInterval (default 10 s) and at once on every
// signal: a connection opened or lost, local addresses or reachability changed, a
// kernel link or address change (package netwatch). Reported statuses are
// damped (WithHysteresis): Healthy is reported only after the node stayed healthy
// for HealthyFor (default 1 s), and the reported status does not reverse direction
// (better after worse or worse after better) within MinDwell (default 5 s) of the
// previous change, so a flapping link cannot make reports flap. A change of the
// reported status goes to every Subscribe channel (one slot, latest wins, never
// stalls the monitor) and is emitted as EvtHealthChanged on the host's event bus.
//
// # Recovery
//
// Without a signal nothing tells a node that the remote side is back, so the
// time to recover is the time to the next attempt. While the node is not healthy,
// the monitor works like a circuit breaker's half-open state for the whole
// network: ONE probe dial at a time (Recoverer.Probe, rotating over bootstrap and
// backup peers that are not connected), the gaps growing 1.5x from ProbeInterval
// (default 2 s) to MaxProbeInterval (default 4 s), each ±10%: 15 dials a minute in
// a long outage, under half of kubo's bootstrapper. The first sign that the
// network works — a new connection — fans out at once (Recoverer.Recover: every
// bootstrap and backup peer, rounds waiting out their backoff woken, table
// refresh). Once healthy, a probe or Recover in flight is cancelled and the
// recovery state is forgotten.
//
//	check: connected routing-table peers >= MinPeers?
//	  yes ──▶ idle: no probes; cancel a probe or Recover in flight; forget the
//	          recovery state (not when the last probe started)
//	  no  ──▶ active (Degraded or Unhealthy):
//
//	┌──▶ evidence? ── no ──▶ Probe (one peer) ── fail ──▶ wait 2, 3, 4, 4 s ──┐
//	│        │ yes                  │ ok (a new connection)                    │
//	│        ▼                      ▼                                          │
//	│     Recover ◀──────────── evidence ◀── a connection opened while         │
//	│   (all bootstrap +                     Unhealthy (inbound or any dial    │
//	│   backup peers,                        but a Recover's own)              │
//	│   table refresh)                                                         │
//	│        │ still not healthy: no probe and no Recover for                  │
//	│        │ 5 s, 10 s, 20 s, ... 1 min (WithRecoverBackoff)                 │
//	└────────┴◀────────────────────────────────────────────────────────────────┘
//
//	kernel link up / address added / default route back / wake from sleep, an
//	added local address, a reachability change: lift the Recover backoff, snap
//	the probe gap back to ProbeInterval and probe now — flapping is damped by
//	counting, not by delaying the first: of the signals within one
//	MaxProbeInterval only three probe at once. The swarm's dial backoff of table
//	peers is cleared and the dialer's waiting rounds dial now. A signal while a
//	Recover runs spares the backoff after it.
//
//	link down / address removed / default route gone: connections on a removed
//	address are closed, and after a link or route loss every connected table
//	peer is pinged with a 1 s timeout and the silent ones are disconnected, so
//	the outage is reported within seconds instead of after the muxers' ~30 s
//	keep-alive.
//
// The first healthy check after a loss reported at least MinDwell ago reports
// Healthy at once (the table refilled from a state it had just lost: no flap
// risk); a flapping table still waits HealthyFor.
//
// Measured side by side with kubo's bootstrapper (bench/, RESILIENCE_LONG=1; see
// the README's Measured section): healthy again about 1-2 s after the network
// returned, against kubo's 7-28 s, with fewer dials during the outage.
//
// Probes and recoveries run on goroutines the monitor owns, one at a time, with
// timeouts (WithProbeTimeout, WithRecoverTimeout); a probe in flight is cancelled
// when evidence arrives, and a probe or Recover in flight when the node is healthy
// again. Without a Recoverer the monitor only reports.
//
// The monitor subscribes to the host's event bus and reads its routing table on
// its own goroutine (and in CheckHealth); it never registers routing-table
// callbacks, so it never calls into the table from one of them. It reads the table
// without holding the lock that IsHealthy, LastReport, Subscribe and Unsubscribe
// take, so a routing-table callback (kbucket calls them under its table lock) may
// call those; CheckHealth reads the table and must not be called from one.
//
// Logging: go-log subsystem "resilience/healthmon"; status changes and
// recoveries at Info, probes at Debug. Metrics: WithMetricsTracer
// (NewMetricsTracer for Prometheus).
package healthmon
