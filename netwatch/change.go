package netwatch

import (
	"fmt"
	"net/netip"
	"time"
)

// Kind says what a [Change] describes.
type Kind int

const (
	// LinkUp: a link became administratively up and running (carrier present).
	LinkUp Kind = iota + 1
	// LinkDown: a link that was up and running stopped being so, or went away.
	LinkDown
	// AddrAdded: a usable address (not loopback, link-local, multicast or
	// unspecified) appeared on a link.
	AddrAdded
	// AddrRemoved: a previously reported address went away.
	AddrRemoved
	// DefaultRouteGained: a default route (0.0.0.0/0 or ::/0) appeared. Netlink only.
	DefaultRouteGained
	// DefaultRouteLost: a default route went away. Netlink only.
	DefaultRouteLost
	// Woke: the wall clock jumped ahead of the monotonic clock, which means the
	// machine was suspended (or its clock was stepped forward); connections may be
	// dead and peers' dial backoffs stale.
	Woke
)

// String returns the constant's name, e.g. "LinkUp".
func (k Kind) String() string {
	switch k {
	case LinkUp:
		return "LinkUp"
	case LinkDown:
		return "LinkDown"
	case AddrAdded:
		return "AddrAdded"
	case AddrRemoved:
		return "AddrRemoved"
	case DefaultRouteGained:
		return "DefaultRouteGained"
	case DefaultRouteLost:
		return "DefaultRouteLost"
	case Woke:
		return "Woke"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Gained reports whether the change may have brought the network (back): LinkUp,
// AddrAdded, DefaultRouteGained and Woke. Reaction: probe at once.
func (k Kind) Gained() bool {
	return k == LinkUp || k == AddrAdded || k == DefaultRouteGained || k == Woke
}

// Lost reports whether the change may have taken the network away: LinkDown,
// AddrRemoved and DefaultRouteLost. Reaction: check the connections at once
// (see [ConnsOn]).
func (k Kind) Lost() bool {
	return k == LinkDown || k == AddrRemoved || k == DefaultRouteLost
}

// Change describes one change of the host's network. Changes are comparable with ==.
type Change struct {
	// Kind says what changed.
	Kind Kind
	// Link is the interface name, e.g. "eth0"; empty for Woke, and for a default
	// route with several next hops.
	Link string
	// Addr is the address with its prefix length (e.g. 10.0.0.5/24) of AddrAdded and
	// AddrRemoved; the zero Prefix otherwise.
	Addr netip.Prefix
	// Gateway is the next hop of DefaultRouteGained and DefaultRouteLost; the zero
	// Addr for a route without one (a point-to-point or tunnel link).
	Gateway netip.Addr
	// Slept is, for Woke, how much further the wall clock advanced than the
	// monotonic clock since the previous check: about how long the machine slept.
	Slept time.Duration
}

// String renders the change for logs, e.g. "eth0 up", "eth0 added 10.0.0.5/24",
// "default route via 10.0.0.1 on eth0 gained" or "woke after ~1h0m0s asleep".
func (c Change) String() string {
	switch c.Kind {
	case LinkUp:
		return c.Link + " up"
	case LinkDown:
		return c.Link + " down"
	case AddrAdded:
		return c.Link + " added " + c.Addr.String()
	case AddrRemoved:
		return c.Link + " removed " + c.Addr.String()
	case DefaultRouteGained, DefaultRouteLost:
		s := "default route"
		if c.Gateway.IsValid() {
			s += " via " + c.Gateway.String()
		}
		if c.Link != "" {
			s += " on " + c.Link
		}
		if c.Kind == DefaultRouteGained {
			return s + " gained"
		}
		return s + " lost"
	case Woke:
		return "woke after ~" + c.Slept.Round(time.Second).String() + " asleep"
	default:
		return fmt.Sprintf("%s %s %s %s %s", c.Kind, c.Link, c.Addr, c.Gateway, c.Slept)
	}
}
