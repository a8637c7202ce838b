// Package dialer is the libp2p glue of go-libp2p-resilience: a host.Host
// wrapper whose Connect retries with per-peer profiles, the network.Notifiee that
// keeps per-peer trackers in step with the swarm, libp2p error classification, and
// keep-alive reconnects for important peers.
//
//	swarm events (synchronous, never blocked)
//	  │ Connected / Disconnected
//	  ▼
//	notifiee ──O(1) in-place update──▶ resilience.ConnectionManager (one tracker per peer)
//	  │ kept peer lost                      ▲ RecordAttempt/Success/Failure
//	  ▼ non-blocking wake                   │
//	keep-alive goroutine ──┐                │
//	Connect / NewStream ───┼─▶ round per peer (singleflight) ─▶ RetryTracked ─▶ wrapped host.Connect
//	ConnectOnce (probes) ──┴─────────── one classified dial ───────────────────▶
//	                                        │ failed attempt that will be retried
//	                                        ▼ bounded queue, own goroutine
//	                                  WithOnRetry callback, EvtConnectRetry on the event bus
//
// ConnectLimited bounds a caller's dials in flight with a semaphore the caller
// shares between its calls: a slot per dial, none while a round waits between
// attempts (package bootstrap dials its peers this way).
//
// Wrap registers the notifiee; Close stops everything the Host started
// (including ConnectOnce dials in flight) and waits for it, then closes the
// wrapped host. Profiles: resilience.ForDHTPeer by default,
// resilience.ForDHTBootstrap for bootstrap peers (WithBootstrapPeers,
// AddBootstrapPeers), any RetryConfig per peer (SetProfile).
//
// Error classes (Classify): permanent errors (dial to self, our gater refused,
// no addresses / no good addresses, no transport, peer ID mismatch) end a round
// after one attempt with the tracker Failed; the swarm's own dial backoff is not a
// failure of the peer, and the Host clears it, deliberately, before each of its
// dials (its profile already spaced them); the caller's context ending stops a
// round without counting against the peer; everything else is transient.
//
// Hand the Host to code that should retry (bootstrap, application protocols).
// Code that dials many peers speculatively, like kad-dht's queries, is better
// given the wrapped host (Unwrap): every failed Connect through the Host waits out
// a whole retry round.
//
// Logging: go-log subsystem "resilience/dialer", per-peer messages at Debug.
// Metrics: WithMetricsTracer (NewMetricsTracer for Prometheus) and
// WithRetryMetrics (resilience's retry-loop metrics).
package dialer
