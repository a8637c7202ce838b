package dialer

import "errors"

// Sentinel errors; check them with errors.Is.
var (
	// ErrClosed is returned by Connect, ConnectWithConfig, ConnectOnce and NewStream
	// once Close has been called, and is the cause with which Close ends the retry
	// rounds that are still running.
	ErrClosed = errors.New("dialer: host closed")
)
