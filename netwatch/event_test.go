package netwatch

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
)

// busWatcher is a watcher whose only source is the test calling signal.
func busWatcher(t *testing.T, opts ...Option) (*Watcher, event.Subscription) {
	t.Helper()
	bus := eventbus.NewBus()
	sub, err := bus.Subscribe(new(EvtNetworkChanged), eventbus.BufSize(64))
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(bus, append([]Option{WithPolling(time.Hour), withInterfaces(noInterfaces), WithWakeCheck(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Close()
		sub.Close()
	})
	return w, sub
}

// events returns the events available now, without waiting.
func events(sub event.Subscription) []EvtNetworkChanged {
	var out []EvtNetworkChanged
	for len(sub.Out()) > 0 {
		out = append(out, (<-sub.Out()).(EvtNetworkChanged))
	}
	return out
}

func addr(i int) Change {
	return Change{Kind: AddrAdded, Link: "eth0", Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 32)}
}

func evt(count int, cs ...Change) EvtNetworkChanged {
	return EvtNetworkChanged{Changes: cs, Count: count}
}

func equalEvents(a, b []EvtNetworkChanged) bool {
	return slices.EqualFunc(a, b, func(x, y EvtNetworkChanged) bool {
		return x.Count == y.Count && slices.Equal(x.Changes, y.Changes)
	})
}

// The first change after a quiet window is emitted at once and alone; the burst that
// follows is counted into one event per window; a quiet window resets.
func TestEventDampingCountsNotDelays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, sub := busWatcher(t)
		down, up := Change{Kind: LinkDown, Link: "eth0"}, Change{Kind: LinkUp, Link: "eth0"}
		type step struct {
			at     time.Duration // since the start
			signal []Change
			want   []EvtNetworkChanged // emitted at exactly this instant
		}
		steps := []step{
			{at: 0, signal: []Change{down}, want: []EvtNetworkChanged{evt(1, down)}},
			{at: 100 * time.Millisecond, signal: []Change{up}},
			{at: 200 * time.Millisecond, signal: []Change{down, up}},
			{at: time.Second, want: []EvtNetworkChanged{evt(3, up, down, up)}},
			{at: 1500 * time.Millisecond, signal: []Change{down}},
			{at: 2 * time.Second, want: []EvtNetworkChanged{evt(1, down)}}, // the burst went on: one more window
			{at: 3 * time.Second}, // a quiet window closes
			{at: 3500 * time.Millisecond, signal: []Change{up}, want: []EvtNetworkChanged{evt(1, up)}},
		}
		start := time.Now()
		for _, s := range steps {
			time.Sleep(start.Add(s.at).Sub(time.Now()))
			for _, c := range s.signal {
				w.signal(c)
			}
			synctest.Wait()
			if got := events(sub); !equalEvents(got, s.want) {
				t.Errorf("at %v: events %+v, want %+v", s.at, got, s.want)
			}
		}
		// Changes itself is never damped: every change is there.
		if got := len(drain(w)); got != 6 {
			t.Errorf("Changes() held %d changes, want all 6", got)
		}
	})
}

func TestEventBurstKeepsNewestAndCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, sub := busWatcher(t, WithBuffer(100))
		w.signal(addr(0))
		synctest.Wait()
		got := events(sub)
		if !equalEvents(got, []EvtNetworkChanged{evt(1, addr(0))}) {
			t.Fatalf("at once: %+v, want only the first change", got)
		}
		for i := 1; i <= MaxEventChanges+8; i++ {
			w.signal(addr(i))
		}
		time.Sleep(DefaultDamping)
		synctest.Wait()
		got = events(sub)
		// Overflowing dropped the oldest but the window's first.
		if len(got) != 1 || got[0].Count != MaxEventChanges+8 || len(got[0].Changes) != MaxEventChanges ||
			got[0].Changes[0] != addr(1) || got[0].Changes[1] != addr(10) || got[0].Changes[MaxEventChanges-1] != addr(MaxEventChanges+8) {
			t.Fatalf("after the window: %+v; want one event counting %d changes, holding the first and the newest (%d in all)",
				got, MaxEventChanges+8, MaxEventChanges)
		}
	})
}

func TestEventNoDamping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, sub := busWatcher(t, WithDamping(0))
		for i := range 3 {
			w.signal(addr(i))
		}
		synctest.Wait()
		if got, want := events(sub), []EvtNetworkChanged{evt(1, addr(0)), evt(1, addr(1)), evt(1, addr(2))}; !equalEvents(got, want) {
			t.Fatalf("events %+v, want one per change %+v", got, want)
		}
	})
}

func TestEvtNetworkChangedGainedLost(t *testing.T) {
	for _, tc := range []struct {
		kinds        []Kind
		gained, lost bool
	}{
		{nil, false, false},
		{[]Kind{LinkUp}, true, false},
		{[]Kind{Woke}, true, false},
		{[]Kind{AddrRemoved}, false, true},
		{[]Kind{LinkDown, DefaultRouteGained}, true, true},
	} {
		var e EvtNetworkChanged
		for _, k := range tc.kinds {
			e.Changes = append(e.Changes, Change{Kind: k})
		}
		if e.Gained() != tc.gained || e.Lost() != tc.lost {
			t.Errorf("%v: Gained() %v, Lost() %v; want %v, %v", tc.kinds, e.Gained(), e.Lost(), tc.gained, tc.lost)
		}
	}
}

func ExampleEvtNetworkChanged() {
	bus := eventbus.NewBus() // a host's: h.EventBus()
	sub, err := bus.Subscribe(new(EvtNetworkChanged))
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	w, err := New(bus)
	if err != nil {
		panic(err)
	}
	defer w.Close()

	for e := range sub.Out() {
		ev := e.(EvtNetworkChanged)
		switch {
		case ev.Gained():
			fmt.Println("the network may be back: probe now;", ev.Count, "changes, the first:", ev.Changes[0])
		case ev.Lost():
			fmt.Println("the network may be gone: check connections now")
		}
	}
}
