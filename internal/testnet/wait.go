package testnet

import (
	"testing"
	"time"
)

// WaitFor polls cond every 10 ms until it holds, failing the test (naming what
// it waited for) once timeout has passed. Tests on real hosts use it instead of
// fixed sleeps; give a timeout generous enough for a loaded machine.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
