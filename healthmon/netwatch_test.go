package healthmon

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netns"
)

func TestNetChangeKindString(t *testing.T) {
	for _, tc := range []struct {
		k    NetChangeKind
		want string
	}{
		{LinkChanged, "LinkChanged"},
		{AddrAdded, "AddrAdded"},
		{AddrRemoved, "AddrRemoved"},
		{0, "NetChangeKind(0)"},
		{42, "NetChangeKind(42)"},
	} {
		if got := tc.k.String(); got != tc.want {
			t.Errorf("NetChangeKind(%d).String() = %q, want %q", int(tc.k), got, tc.want)
		}
	}
}

func TestNetChangeString(t *testing.T) {
	p := netip.MustParsePrefix("10.0.0.5/24")
	for _, tc := range []struct {
		c    NetChange
		want string
	}{
		{NetChange{Kind: LinkChanged, Link: "eth0", Up: true}, "eth0 up"},
		{NetChange{Kind: LinkChanged, Link: "eth0"}, "eth0 down"},
		{NetChange{Kind: AddrAdded, Link: "eth0", Addr: p}, "eth0 added 10.0.0.5/24"},
		{NetChange{Kind: AddrRemoved, Link: "eth0", Addr: p}, "eth0 removed 10.0.0.5/24"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestWatchNetworkRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  NetWatchOption
		want string
	}{
		{"nil option", nil, "option 0 is nil"},
		{"zero buffer", WithNetChangeBuffer(0), "WithNetChangeBuffer"},
		{"negative buffer", WithNetChangeBuffer(-3), "WithNetChangeBuffer"},
		{"closed namespace", WithNetNS(netns.None()), "WithNetNS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := WatchNetwork(tc.opt)
			if err == nil {
				w.Close()
				t.Fatal("WatchNetwork accepted a bad option")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// Linux watches its own namespace without privileges; every other platform gets the stub.
func TestWatchNetworkPlatform(t *testing.T) {
	w, err := WatchNetwork()
	if runtime.GOOS != "linux" {
		if !errors.Is(err, ErrNetWatchUnsupported) || w != nil {
			t.Fatalf("WatchNetwork() = %v, %v; want nil, ErrNetWatchUnsupported", w, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("WatchNetwork() on Linux: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// A reader that never reads must not block the producer; the channel keeps the newest changes.
func TestEmitDropsOldest(t *testing.T) {
	w := newNetWatcher(4)
	for i := range 10 {
		w.emit(NetChange{Kind: AddrAdded, Link: "eth0", Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32)})
	}
	if got := w.Dropped(); got != 6 {
		t.Errorf("Dropped() = %d, want 6", got)
	}
	if got := len(w.Changes()); got != 4 {
		t.Fatalf("len(Changes()) = %d, want 4", got)
	}
	for i := 6; i < 10; i++ {
		c := <-w.Changes()
		if want := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}); c.Addr.Addr() != want {
			t.Errorf("change %d has address %s, want %s (newest changes kept in order)", i, c.Addr, want)
		}
	}
}

func TestPrefixFromIPNet(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   net.IPNet
		want string // "" = not convertible
	}{
		{"ipv4 4-byte", net.IPNet{IP: net.IP{10, 1, 2, 3}, Mask: net.CIDRMask(24, 32)}, "10.1.2.3/24"},
		{"ipv4 16-byte, 4-byte mask", net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(16, 32)}, "10.1.2.3/16"},
		{"ipv4 16-byte, 16-byte mask", net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(120, 128)}, "10.1.2.3/24"},
		{"ipv6", net.IPNet{IP: net.ParseIP("2001:db8::1"), Mask: net.CIDRMask(64, 128)}, "2001:db8::1/64"},
		{"no mask", net.IPNet{IP: net.IP{192, 0, 2, 1}}, "192.0.2.1/32"},
		{"bad ip", net.IPNet{IP: net.IP{1, 2, 3}, Mask: net.CIDRMask(8, 32)}, ""},
		{"nil ip", net.IPNet{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := prefixFromIPNet(tc.in)
			if tc.want == "" {
				if ok {
					t.Fatalf("prefixFromIPNet(%v) = %s, true; want not ok", tc.in, p)
				}
				return
			}
			if !ok || p.String() != tc.want {
				t.Fatalf("prefixFromIPNet(%v) = %s, %v; want %s, true", tc.in, p, ok, tc.want)
			}
		})
	}
}

func TestReportableAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.123.0.1", true},
		{"192.0.2.7", true},
		{"2001:db8::1", true},
		{"127.0.0.1", false},
		{"::1", false},
		{"169.254.1.1", false},
		{"fe80::1", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"0.0.0.0", false},
		{"::", false},
	} {
		if got := reportableAddr(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("reportableAddr(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if reportableAddr(netip.Addr{}) {
		t.Error("reportableAddr(zero Addr) = true, want false")
	}
}
