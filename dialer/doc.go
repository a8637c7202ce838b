// Package dialer is the libp2p glue of go-libp2p-resilience: a host.Host
// wrapper whose Connect retries with per-peer profiles, a dial scheduler that
// is the one owner of each peer's dials, the network.Notifiee that keeps
// per-peer trackers in step with the swarm, libp2p error classification, and
// keep-alive reconnects for important peers.
//
//	swarm events (synchronous, never blocked)
//	  │ Connected / Disconnected                 inbound connection: wake rounds
//	  ▼                                                      │
//	notifiee ──O(1) in-place update──▶ resilience.ConnectionManager (one tracker per peer)
//	  │ kept peer lost                      ▲ written only by the notifiee and the scheduler
//	  ▼ non-blocking wake                   │
//	keep-alive goroutine ──┐                │
//	Connect / Dial ────────┼─▶ dial scheduler: one worker per peer ──▶ wrapped host.Connect
//	ConnectOnce (probes) ──┘    round (RetryTracked, woken by kicks) or probe (one dial);
//	                            each dial: per-IP rate limit, then a slot of the one
//	                            priority gate (bootstrap > kept > DHT peer > other)
//	                                        │ failed attempt that will be retried
//	                                        ▼ bounded queue, own goroutine
//	                                  WithOnRetry callback, EvtConnectRetry on the event bus
//
// The scheduler runs at most one dial per peer at a time. Concurrent callers
// share the peer's round; a probe of a peer whose round waits out its backoff
// wakes the round and shares its dial; Dial with Immediately (package
// bootstrap's Recover), WakeRounds (the health monitor on a network signal), a
// successful probe and an inbound connection make waiting rounds dial at once.
// A probe never leaves its tracker Retrying, and a caller that leaves ends only
// its own attempt, so the manager's bound holds for every state.
//
// Wrap registers the notifiee; Close stops everything the Host started
// (including probes in flight) and waits for it, then closes the wrapped host.
// Profiles: resilience.ForDHTPeer by default, resilience.ForDHTBootstrap for
// bootstrap peers (WithBootstrapPeers, AddBootstrapPeers), any RetryConfig per
// peer (SetProfile) or per round (WithRoundConfig).
//
// Error classes (Classify): permanent errors (dial to self, our gater refused,
// no addresses / no good addresses, no transport, peer ID mismatch) end a round
// after one attempt with the tracker Failed; the swarm's own dial backoff is not a
// failure of the peer, and the Host clears it, deliberately, before each of its
// dials (its profile already spaced them); the caller's context ending stops a
// round without counting against the peer; a refusal by the resource manager's
// connection rate limit ("rate limit exceeded") is no attempt at all: the Host
// waits and dials again (WithIPDialLimit mirrors that limit so that such dials
// are deferred rather than refused); everything else is transient.
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
