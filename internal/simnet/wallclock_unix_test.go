//go:build unix

package simnet_test

import (
	"time"

	"golang.org/x/sys/unix"
)

// wallNow reads the real monotonic clock, which inside a synctest bubble
// time.Now does not: it is how the harness measures wall time per simulated
// minute from inside the bubble.
func wallNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
