package netwatch

import (
	"net/netip"
	"testing"
	"time"
)

func TestKindString(t *testing.T) {
	for _, tc := range []struct {
		k    Kind
		want string
	}{
		{LinkUp, "LinkUp"},
		{LinkDown, "LinkDown"},
		{AddrAdded, "AddrAdded"},
		{AddrRemoved, "AddrRemoved"},
		{DefaultRouteGained, "DefaultRouteGained"},
		{DefaultRouteLost, "DefaultRouteLost"},
		{Woke, "Woke"},
		{0, "Kind(0)"},
		{42, "Kind(42)"},
	} {
		if got := tc.k.String(); got != tc.want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(tc.k), got, tc.want)
		}
	}
}

func TestKindGainedLost(t *testing.T) {
	for _, tc := range []struct {
		k            Kind
		gained, lost bool
	}{
		{LinkUp, true, false},
		{AddrAdded, true, false},
		{DefaultRouteGained, true, false},
		{Woke, true, false},
		{LinkDown, false, true},
		{AddrRemoved, false, true},
		{DefaultRouteLost, false, true},
		{0, false, false},
	} {
		if g, l := tc.k.Gained(), tc.k.Lost(); g != tc.gained || l != tc.lost {
			t.Errorf("%s: Gained() %v, Lost() %v; want %v, %v", tc.k, g, l, tc.gained, tc.lost)
		}
	}
}

func TestChangeString(t *testing.T) {
	p := netip.MustParsePrefix("10.0.0.5/24")
	gw := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		c    Change
		want string
	}{
		{Change{Kind: LinkUp, Link: "eth0"}, "eth0 up"},
		{Change{Kind: LinkDown, Link: "eth0"}, "eth0 down"},
		{Change{Kind: AddrAdded, Link: "eth0", Addr: p}, "eth0 added 10.0.0.5/24"},
		{Change{Kind: AddrRemoved, Link: "eth0", Addr: p}, "eth0 removed 10.0.0.5/24"},
		{Change{Kind: DefaultRouteGained, Link: "eth0", Gateway: gw}, "default route via 10.0.0.1 on eth0 gained"},
		{Change{Kind: DefaultRouteLost, Link: "wg0"}, "default route on wg0 lost"},
		{Change{Kind: Woke, Slept: time.Hour + 400*time.Millisecond}, "woke after ~1h0m0s asleep"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.c, got, tc.want)
		}
	}
}
