//go:build !linux

package healthmon

// WatchNetwork validates its options and returns [ErrNetWatchUnsupported]: kernel
// network-change watching is implemented on Linux only.
func WatchNetwork(opts ...NetWatchOption) (*NetWatcher, error) {
	if _, err := newNetWatchConfig(opts); err != nil {
		return nil, err
	}
	return nil, ErrNetWatchUnsupported
}
