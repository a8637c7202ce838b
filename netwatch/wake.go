package netwatch

import "time"

// watchClock notices sleep: every wakeCheck it compares how far the wall clock and
// the monotonic clock advanced since the previous check. While a machine is
// suspended the monotonic clock stands still (Linux CLOCK_MONOTONIC, which Go's
// timers and monotonic readings use) and the wall clock does not, so after resume
// the wall clock is ahead by about the time asleep. More than wakeCheck/2 ahead is
// reported as Woke: with the default 15 s, a wall-clock gap of over 22.5 s between
// two checks, Tailscale netmon's rule. A clock stepped forward by as much reads the
// same and is reported too; a clock stepped back is not.
func (w *Watcher) watchClock() {
	defer w.wg.Done()
	t := time.NewTicker(w.cfg.wakeCheck)
	defer t.Stop()
	lastWall, lastMono := w.cfg.wall(), time.Now()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		wall, mono := w.cfg.wall(), time.Now()
		ahead := wall.Sub(lastWall) - mono.Sub(lastMono)
		lastWall, lastMono = wall, mono
		if ahead > w.cfg.wakeCheck/2 {
			w.signal(Change{Kind: Woke, Slept: ahead})
		}
	}
}
