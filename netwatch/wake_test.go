package netwatch

import (
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A suspended machine: the wall clock jumps while the monotonic clock stands still.
// The test's wall clock is the bubble's clock plus an offset it moves.
func TestWokeAfterWallClockJump(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ahead atomic.Int64
		wall := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())).Round(0) }
		w, err := New(nil, WithPolling(time.Hour), withInterfaces(noInterfaces), WithWallClock(wall))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		start := time.Now()

		steps := []struct {
			name  string
			jump  time.Duration // wall clock moved by this between two checks
			woke  bool
			slept time.Duration
		}{
			{"no jump", 0, false, 0},
			{"drift of 7 s (under half the 15 s interval)", 7 * time.Second, false, 0},
			{"8 s ahead: a 23 s gap between checks 15 s apart", 8 * time.Second, true, 8 * time.Second},
			{"slept an hour", time.Hour, true, time.Hour},
			{"clock stepped back an hour", -time.Hour, false, 0},
		}
		for i, s := range steps {
			ahead.Add(int64(s.jump))
			time.Sleep(DefaultWakeCheck)
			synctest.Wait()
			got := drain(w)
			var want []Change
			if s.woke {
				want = []Change{{Kind: Woke, Slept: s.slept}}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: %v, want %v", s.name, got, want)
			}
			if at, want := time.Since(start), time.Duration(i+1)*DefaultWakeCheck; at != want {
				t.Errorf("%s: checked at %v, want %v", s.name, at, want)
			}
		}
	})
}

func TestWakeCheckOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ahead atomic.Int64
		wall := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())).Round(0) }
		w, err := New(nil, WithPolling(time.Hour), withInterfaces(noInterfaces), WithWallClock(wall), WithWakeCheck(0))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		ahead.Store(int64(time.Hour))
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := drain(w); len(got) != 0 {
			t.Fatalf("sleep detection off, got %v", got)
		}
	})
}
