package netwatch

import (
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

func TestNewRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Option
		want string
	}{
		{"nil option", nil, "option 0 is nil"},
		{"zero buffer", WithBuffer(0), "WithBuffer"},
		{"negative buffer", WithBuffer(-3), "WithBuffer"},
		{"closed namespace", WithNetNS(netns.None()), "WithNetNS"},
		{"zero poll interval", WithPolling(0), "WithPolling"},
		{"negative wake check", WithWakeCheck(-time.Second), "WithWakeCheck"},
		{"negative damping", WithDamping(-time.Second), "WithDamping"},
		{"nil wall clock", WithWallClock(nil), "WithWallClock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(nil, tc.opt)
			if err == nil {
				w.Close()
				t.Fatal("New accepted a bad option")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// Linux listens to netlink without privileges; every other platform polls.
func TestNewPicksSource(t *testing.T) {
	w, err := New(nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer w.Close()
	if want := runtime.GOOS != "linux"; w.Polling() != want {
		t.Fatalf("Polling() = %v on %s, want %v", w.Polling(), runtime.GOOS, want)
	}
}

// A reader that never reads must not block the sources; the channel keeps the newest changes.
func TestSignalDropsOldest(t *testing.T) {
	w, err := New(nil, WithBuffer(4), WithPolling(time.Hour), withInterfaces(noInterfaces), WithWakeCheck(0))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 10 {
		w.signal(Change{Kind: AddrAdded, Link: "eth0", Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32)})
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

func TestCloseClosesChangesAndKeepsUnread(t *testing.T) {
	w, err := New(nil, WithPolling(time.Hour), withInterfaces(noInterfaces))
	if err != nil {
		t.Fatal(err)
	}
	w.signal(Change{Kind: LinkUp, Link: "eth0"})
	w.Close()
	w.Close()
	if c, ok := <-w.Changes(); !ok || c != (Change{Kind: LinkUp, Link: "eth0"}) {
		t.Fatalf("first read after Close = %v, %v; want the unread change", c, ok)
	}
	if _, ok := <-w.Changes(); ok {
		t.Fatal("Changes() still open after Close")
	}
}

func noInterfaces() ([]ifaceState, error) { return nil, nil }

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
