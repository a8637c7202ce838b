// Package netwatch watches the host's own network and reports when it changes:
// links going up or down, addresses added or removed, default routes gained or lost,
// and the machine waking from sleep. It is what lets a libp2p node react to its own
// network within a second, instead of waiting for a muxer keep-alive (~30 s) to
// notice an outage or for the next retry tick to notice the network is back.
//
//	kernel (netlink: links, addresses, routes) ─┐
//	  or interfaces polled every 2 s  ──────────┼─▶ Watcher ─┬─▶ Changes(): every change, at once
//	clocks: wall vs monotonic every 15 s ───────┘            └─▶ host event bus: EvtNetworkChanged,
//	                                                               first change at once, bursts counted
//
// # Sources
//
// On Linux the [Watcher] subscribes to rtnetlink (no privileges needed in the
// process's own namespace) and reports only real changes: a link's up-and-running
// state flipping, usable addresses (not loopback, link-local, multicast) appearing or
// going away, and default routes in any routing table appearing or going away. If the
// kernel drops notifications, the watcher re-reads the kernel state and reports the
// difference. Where netlink is unavailable (another operating system, or a sandbox
// that denies netlink sockets, as Android does: kubo#9513) it falls back to listing
// the interfaces and their addresses every [DefaultPollInterval] and reporting the
// differences; [WithPolling] forces that. Polling sees no routes. (On Linux the
// standard library lists interfaces over netlink too; a sandbox that denies even
// that dump, as some Android versions do, golang/go#40569, leaves the watcher with
// sleep detection alone: each failed listing is logged and retried.)
//
// Sleep is a signal too: while a machine is suspended its monotonic clock stands
// still and its wall clock does not. Every [DefaultWakeCheck] the watcher compares
// the two; a wall clock more than half an interval ahead reports [Woke] (with 15 s,
// a wall-clock gap over 22.5 s, Tailscale netmon's rule). After a wake, connections
// may be dead and dial backoffs stale.
//
// # Consumers
//
// [Watcher.Changes] delivers every change as soon as the watcher sees it; nothing is
// delayed or merged (a reader that falls behind loses the oldest changes, never the
// newest). It is for a component that acts at once, such as the health monitor:
// [Kind.Gained] changes (LinkUp, AddrAdded, DefaultRouteGained, Woke) call for one
// probe now; [Kind.Lost] changes (LinkDown, AddrRemoved, DefaultRouteLost) for
// checking the connections now ([ConnsOn] finds those the change cut off).
//
// Given the host's event bus, the watcher also emits [EvtNetworkChanged], which
// go-libp2p lacks (go-libp2p#2735). It is damped by counting, not by delay: the first
// change after a quiet period is emitted at once, alone; changes in the following
// damping window ([DefaultDamping]) are emitted together, with their count, when it
// ends.
//
// Every goroutine the watcher starts stops in [Watcher.Close].
package netwatch
