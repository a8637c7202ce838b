//go:build !linux

package netwatch

import "github.com/vishvananda/netns"

// startNetlink reports that this platform has no netlink: the watcher polls.
func (w *Watcher) startNetlink() error {
	if w.cfg.netlinkErr != nil {
		return w.cfg.netlinkErr
	}
	return errNetlinkUnsupported
}

// runInNamespace runs f: network namespaces exist on Linux only, and WithNetNS
// accepts only open handles, which other platforms cannot make.
func runInNamespace(_ netns.NsHandle, f func() error) error { return f() }
