package netwatch

import "fmt"

// Test-only options: seams into the sources.

// withRecvBuffer forces the netlink socket receive buffer to bytes (provoke ENOBUFS).
func withRecvBuffer(bytes int) Option {
	return func(c *config) error {
		if bytes < 1 {
			return fmt.Errorf("withRecvBuffer: bytes must be at least 1, got %d", bytes)
		}
		c.recvBuf = bytes
		return nil
	}
}

// withUpdateHook runs f on the netlink goroutine before each update (stall it).
func withUpdateHook(f func()) Option {
	return func(c *config) error {
		c.update = f
		return nil
	}
}

// withInterfaces replaces the polling source's interface lister.
func withInterfaces(list func() ([]ifaceState, error)) Option {
	return func(c *config) error {
		c.interfaces = list
		return nil
	}
}

// withNetlinkError makes netlink unavailable with err, as a sandbox denying it would.
func withNetlinkError(err error) Option {
	return func(c *config) error {
		c.netlinkErr = err
		return nil
	}
}
