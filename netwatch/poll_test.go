package netwatch

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

// fakeIfaces is an interface table the test edits; the polling source reads it.
type fakeIfaces struct {
	mu  sync.Mutex
	ifs []ifaceState
	err error
}

func (f *fakeIfaces) list() ([]ifaceState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := make([]ifaceState, len(f.ifs))
	for i, s := range f.ifs {
		s.addrs = slices.Clone(s.addrs)
		out[i] = s
	}
	return out, nil
}

func (f *fakeIfaces) set(edit func(ifs []ifaceState) []ifaceState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ifs = edit(f.ifs)
}

// drain returns the changes available now, without waiting.
func drain(w *Watcher) []Change {
	var out []Change
	for {
		select {
		case c := <-w.Changes():
			out = append(out, c)
		default:
			return out
		}
	}
}

var errNetlinkDenied = fmt.Errorf("netlinkrib: %w", os.ErrPermission) // what Android answers (kubo#9513)

// When netlink is denied the watcher polls the interfaces every DefaultPollInterval
// and reports the differences, and still emits on the bus.
func TestPollingFallbackWhenNetlinkDenied(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eth := netip.MustParsePrefix("192.0.2.10/24")
		ifs := &fakeIfaces{ifs: []ifaceState{
			{name: "lo", up: true, loopback: true, addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			{name: "wlan0", up: true, addrs: []netip.Prefix{eth}},
		}}
		bus := eventbus.NewBus()
		sub, err := bus.Subscribe(new(EvtNetworkChanged), eventbus.BufSize(16))
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		w, err := New(bus, withNetlinkError(errNetlinkDenied), withInterfaces(ifs.list), WithWakeCheck(0))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if !w.Polling() {
			t.Fatal("Polling() = false with netlink denied")
		}

		// The baseline is not reported; the loopback link never is.
		time.Sleep(3 * DefaultPollInterval)
		synctest.Wait()
		if got := drain(w); len(got) != 0 {
			t.Fatalf("changes without a change: %v", got)
		}

		v6 := netip.MustParsePrefix("2001:db8::7/64")
		ifs.set(func(ifs []ifaceState) []ifaceState {
			ifs[0].addrs = append(ifs[0].addrs, netip.MustParsePrefix("127.0.0.2/8"))
			ifs[1].addrs = append(ifs[1].addrs, v6, netip.MustParsePrefix("fe80::1/64"))
			return ifs
		})
		changedAt := time.Now()
		time.Sleep(DefaultPollInterval)
		synctest.Wait()
		if got, want := drain(w), []Change{{Kind: AddrAdded, Link: "wlan0", Addr: v6}}; !slices.Equal(got, want) {
			t.Fatalf("after adding addresses: %v, want %v", got, want)
		}
		if waited := time.Since(changedAt); waited > DefaultPollInterval {
			t.Errorf("change reported %v after it happened, more than one poll interval", waited)
		}

		ifs.set(func(ifs []ifaceState) []ifaceState {
			ifs[1].up = false
			ifs[1].addrs = ifs[1].addrs[:1]
			return ifs
		})
		time.Sleep(DefaultPollInterval)
		synctest.Wait()
		want := []Change{{Kind: LinkDown, Link: "wlan0"}, {Kind: AddrRemoved, Link: "wlan0", Addr: v6}}
		if got := drain(w); !slices.Equal(got, want) {
			t.Fatalf("after the link went down: %v, want %v (losses in a stable order)", got, want)
		}

		// A failing listing is skipped, not reported as everything gone.
		ifs.mu.Lock()
		ifs.err = errors.New("list denied")
		ifs.mu.Unlock()
		time.Sleep(3 * DefaultPollInterval)
		synctest.Wait()
		ifs.mu.Lock()
		ifs.err = nil
		ifs.ifs[1].up = true
		ifs.mu.Unlock()
		time.Sleep(DefaultPollInterval)
		synctest.Wait()
		if got, want := drain(w), []Change{{Kind: LinkUp, Link: "wlan0"}}; !slices.Equal(got, want) {
			t.Fatalf("after a failed listing and the link coming back: %v, want %v", got, want)
		}

		// The bus saw the same changes.
		var onBus []Change
		for len(sub.Out()) > 0 {
			onBus = append(onBus, (<-sub.Out()).(EvtNetworkChanged).Changes...)
		}
		wantBus := []Change{{Kind: AddrAdded, Link: "wlan0", Addr: v6}, {Kind: LinkDown, Link: "wlan0"},
			{Kind: AddrRemoved, Link: "wlan0", Addr: v6}, {Kind: LinkUp, Link: "wlan0"}}
		if !slices.Equal(onBus, wantBus) {
			t.Fatalf("on the bus: %v, want %v", onBus, wantBus)
		}
	})
}

// WithPolling polls at its interval even where netlink works.
func TestWithPollingInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ifs := &fakeIfaces{ifs: []ifaceState{{name: "eth0"}}}
		w, err := New(nil, WithPolling(100*time.Millisecond), withInterfaces(ifs.list), WithWakeCheck(0))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if !w.Polling() {
			t.Fatal("Polling() = false with WithPolling")
		}
		ifs.set(func(ifs []ifaceState) []ifaceState { ifs[0].up = true; return ifs })
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if got, want := drain(w), []Change{{Kind: LinkUp, Link: "eth0"}}; !slices.Equal(got, want) {
			t.Fatalf("after one 100 ms interval: %v, want %v", got, want)
		}
	})
}

// A listing that fails from the start is retried; the first good one is the baseline.
func TestPollingStartsWithoutInterfaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ifs := &fakeIfaces{err: errNetlinkDenied, ifs: []ifaceState{{name: "eth0", up: true}}}
		w, err := New(nil, WithPolling(time.Second), withInterfaces(ifs.list), WithWakeCheck(0))
		if err != nil {
			t.Fatalf("New with a failing listing: %v", err)
		}
		defer w.Close()
		time.Sleep(2 * time.Second)
		synctest.Wait() // the polls at 1 s and 2 s failed
		ifs.mu.Lock()
		ifs.err = nil
		ifs.mu.Unlock()
		time.Sleep(time.Second) // baseline: eth0 up
		synctest.Wait()
		ifs.set(func(ifs []ifaceState) []ifaceState { ifs[0].up = false; return ifs })
		time.Sleep(time.Second)
		synctest.Wait()
		if got, want := drain(w), []Change{{Kind: LinkDown, Link: "eth0"}}; !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v (the first good listing is the baseline)", got, want)
		}
	})
}
