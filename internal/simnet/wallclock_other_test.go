//go:build !unix

package simnet_test

import "time"

// wallNow is 0 where the harness has no real clock inside a synctest bubble:
// wall times then read 0.
func wallNow() time.Duration { return 0 }
