//go:build linux

package healthmon

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	// nlChanBuffer decouples the netlink receive goroutines from the watcher goroutine.
	nlChanBuffer = 16
	// dumpAttempts bounds retries of a link/address dump the kernel reports as interrupted.
	dumpAttempts = 5
	// repairBackoffMin/Max pace retries when resubscribing fails (e.g. out of file descriptors).
	repairBackoffMin = time.Second
	repairBackoffMax = 30 * time.Second
)

// WatchNetwork starts watching kernel link and address changes over rtnetlink
// (github.com/vishvananda/netlink). Close the returned watcher to stop it.
//
// Subscribing needs no privileges in the caller's own namespace; watching another
// namespace ([WithNetNS]) needs the rights to enter it.
func WatchNetwork(opts ...NetWatchOption) (*NetWatcher, error) {
	cfg, err := newNetWatchConfig(opts)
	if err != nil {
		return nil, err
	}
	s := &nlWatch{
		cfg:   cfg,
		ns:    netns.None(),
		links: make(map[int]linkState),
		addrs: make(map[addrKey]string),
	}
	if cfg.ns.IsOpen() {
		fd, err := unix.FcntlInt(uintptr(cfg.ns), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("WatchNetwork: duplicate namespace handle %d: %w", int(cfg.ns), err)
		}
		s.ns = netns.NsHandle(fd)
	}
	if err := s.start(); err != nil {
		s.release()
		return nil, fmt.Errorf("WatchNetwork: %w", err)
	}
	w := newNetWatcher(cfg.buffer)
	s.w = w
	w.wg.Add(1)
	go s.run()
	return w, nil
}

// linkState is what the watcher remembers about a link.
type linkState struct {
	name     string
	up       bool // IFF_UP and IFF_RUNNING
	loopback bool
}

func linkStateOf(a *netlink.LinkAttrs) linkState {
	return linkState{
		name:     a.Name,
		up:       a.RawFlags&unix.IFF_UP != 0 && a.RawFlags&unix.IFF_RUNNING != 0,
		loopback: a.RawFlags&unix.IFF_LOOPBACK != 0,
	}
}

type addrKey struct {
	index  int
	prefix netip.Prefix
}

// nlWatch is the state of the watcher goroutine. Everything except cfg, ns and w is
// touched only by that goroutine (or by WatchNetwork before it starts).
type nlWatch struct {
	w   *NetWatcher
	cfg netWatchConfig
	ns  netns.NsHandle // our own duplicate, or netns.None() for the caller's namespace

	handle *netlink.Handle         // queries: dumps, link lookups
	links  map[int]linkState       // by link index
	addrs  map[addrKey]string      // reported addresses -> link name
	linkCh chan netlink.LinkUpdate // nil while not subscribed
	addrCh chan netlink.AddrUpdate // nil while not subscribed
	linkDn chan struct{}           // closes the link subscription
	addrDn chan struct{}           // closes the address subscription
}

// inNamespace runs f where netlink may switch threads into s.ns. For a foreign namespace f
// runs on a goroutine that stays locked to its OS thread until it exits, so the runtime
// retires that thread: even if netlink failed to switch back, no goroutine inherits a thread
// in the wrong namespace.
func (s *nlWatch) inNamespace(f func() error) error {
	if !s.ns.IsOpen() {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		errc <- f()
	}()
	return <-errc
}

// start opens the query handle, subscribes and reads the baseline state.
func (s *nlWatch) start() error {
	err := s.inNamespace(func() error {
		h, err := netlink.NewHandleAt(s.ns, unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("open netlink handle: %w", err)
		}
		s.handle = h
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.subscribe(); err != nil {
		return err
	}
	return s.sync(false)
}

func (s *nlWatch) subscribe() error {
	return s.inNamespace(func() error {
		if s.linkCh == nil {
			ch, dn := make(chan netlink.LinkUpdate, nlChanBuffer), make(chan struct{})
			opts := netlink.LinkSubscribeOptions{
				ErrorCallback:          s.onError("link", dn),
				ReceiveBufferSize:      s.cfg.recvBuf,
				ReceiveBufferForceSize: s.cfg.recvBuf > 0,
			}
			if s.ns.IsOpen() {
				opts.Namespace = &s.ns
			}
			if err := netlink.LinkSubscribeWithOptions(ch, dn, opts); err != nil {
				close(dn)
				return fmt.Errorf("subscribe to link changes: %w", err)
			}
			s.linkCh, s.linkDn = ch, dn
		}
		if s.addrCh == nil {
			ch, dn := make(chan netlink.AddrUpdate, nlChanBuffer), make(chan struct{})
			opts := netlink.AddrSubscribeOptions{
				ErrorCallback:          s.onError("address", dn),
				ReceiveBufferSize:      s.cfg.recvBuf,
				ReceiveBufferForceSize: s.cfg.recvBuf > 0,
			}
			if s.ns.IsOpen() {
				opts.Namespace = &s.ns
			}
			if err := netlink.AddrSubscribeWithOptions(ch, dn, opts); err != nil {
				close(dn)
				return fmt.Errorf("subscribe to address changes: %w", err)
			}
			s.addrCh, s.addrDn = ch, dn
		}
		return nil
	})
}

// onError logs netlink receive errors. It runs on netlink's goroutines and must not block.
func (s *nlWatch) onError(what string, dn <-chan struct{}) func(error) {
	return func(err error) {
		select {
		case <-dn: // we closed the socket
			log.Debugw("netlink subscription closed", "what", what, "err", err)
		default:
			log.Warnw("netlink subscription error", "what", what, "err", err)
		}
	}
}

// unsubscribeLinks closes the link subscription and waits for netlink's receive goroutine,
// draining updates it may be blocked sending.
func (s *nlWatch) unsubscribeLinks() {
	if s.linkCh == nil {
		return
	}
	close(s.linkDn)
	for range s.linkCh {
	}
	s.linkCh, s.linkDn = nil, nil
}

func (s *nlWatch) unsubscribeAddrs() {
	if s.addrCh == nil {
		return
	}
	close(s.addrDn)
	for range s.addrCh {
	}
	s.addrCh, s.addrDn = nil, nil
}

// release stops the subscriptions and frees the handle and namespace reference.
func (s *nlWatch) release() {
	s.unsubscribeLinks()
	s.unsubscribeAddrs()
	if s.handle != nil {
		s.handle.Close()
		s.handle = nil
	}
	if s.ns.IsOpen() {
		_ = s.ns.Close()
	}
}

func (s *nlWatch) run() {
	defer s.w.wg.Done()
	defer close(s.w.out)
	defer s.release()

	var (
		retry   *time.Timer
		retryC  <-chan time.Time
		backoff = repairBackoffMin
	)
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	repair := func() {
		err := s.subscribe()
		if err == nil {
			err = s.sync(true)
		}
		if err == nil {
			s.w.resyncs.Add(1)
			backoff = repairBackoffMin
			retryC = nil
			log.Infow("netlink resubscribed and resynchronised")
			return
		}
		log.Warnw("netlink resubscribe failed", "err", err, "retry_in", backoff)
		if retry == nil {
			retry = time.NewTimer(backoff)
		} else {
			retry.Reset(backoff)
		}
		retryC = retry.C
		backoff = min(2*backoff, repairBackoffMax)
	}

	for {
		select {
		case <-s.w.done:
			return
		case u, ok := <-s.linkCh:
			if !ok {
				// Netlink's receive goroutine gave up (typically ENOBUFS: the kernel dropped
				// notifications). Release the dead socket and start over from a fresh dump.
				close(s.linkDn)
				s.linkCh, s.linkDn = nil, nil
				repair()
				continue
			}
			s.testHook()
			s.onLink(u)
		case u, ok := <-s.addrCh:
			if !ok {
				close(s.addrDn)
				s.addrCh, s.addrDn = nil, nil
				repair()
				continue
			}
			s.testHook()
			s.onAddr(u)
		case <-retryC:
			retryC = nil
			repair()
		}
	}
}

func (s *nlWatch) testHook() {
	if s.cfg.update != nil {
		s.cfg.update()
	}
}

func (s *nlWatch) onLink(u netlink.LinkUpdate) {
	if u.Link == nil {
		return
	}
	idx := int(u.Index)
	old, known := s.links[idx]
	if u.Header.Type == unix.RTM_DELLINK {
		delete(s.links, idx)
		if known && old.up && !old.loopback {
			s.w.emit(NetChange{Kind: LinkChanged, Link: old.name, Up: false})
		}
		return
	}
	st := linkStateOf(u.Attrs())
	s.links[idx] = st
	if !st.loopback && st.up != old.up { // an unknown link counts as down
		s.w.emit(NetChange{Kind: LinkChanged, Link: st.name, Up: st.up})
	}
}

func (s *nlWatch) onAddr(u netlink.AddrUpdate) {
	p, ok := prefixFromIPNet(u.LinkAddress)
	if !ok {
		return
	}
	key := addrKey{index: u.LinkIndex, prefix: p}
	name, known := s.addrs[key]
	usable := u.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 // IPv6 DAD still running or failed
	if !u.NewAddr || !usable {
		if known {
			delete(s.addrs, key)
			s.w.emit(NetChange{Kind: AddrRemoved, Link: name, Addr: p})
		}
		return
	}
	if known || !reportableAddr(p.Addr()) {
		return
	}
	st, ok := s.linkByIndex(u.LinkIndex)
	if !ok || st.loopback {
		return
	}
	s.addrs[key] = st.name
	s.w.emit(NetChange{Kind: AddrAdded, Link: st.name, Addr: p})
}

// linkByIndex returns what is known of a link; an address event can arrive before the
// event of its new link (separate sockets), so unknown links are looked up. The looked-up
// state is not remembered: the link's own events decide its up/down baseline.
func (s *nlWatch) linkByIndex(idx int) (linkState, bool) {
	if st, ok := s.links[idx]; ok {
		return st, true
	}
	l, err := s.handle.LinkByIndex(idx)
	if err != nil {
		log.Debugw("address on unknown link", "index", idx, "err", err)
		return linkState{}, false
	}
	return linkStateOf(l.Attrs()), true
}

// sync dumps the kernel's links and addresses. With report false the dump becomes the
// baseline; with report true (after lost notifications) differences to what the watcher
// last knew are reported first.
func (s *nlWatch) sync(report bool) error {
	links, err := dumpRetry(s.handle.LinkList)
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	addrs, err := dumpRetry(func() ([]netlink.Addr, error) { return s.handle.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}

	newLinks := make(map[int]linkState, len(links))
	for _, l := range links {
		newLinks[l.Attrs().Index] = linkStateOf(l.Attrs())
	}
	newAddrs := make(map[addrKey]string)
	for _, a := range addrs {
		if a.IPNet == nil || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		p, ok := prefixFromIPNet(*a.IPNet)
		st, known := newLinks[a.LinkIndex]
		if !ok || !known || st.loopback || !reportableAddr(p.Addr()) {
			continue
		}
		newAddrs[addrKey{index: a.LinkIndex, prefix: p}] = st.name
	}

	if report {
		var changes []NetChange
		for idx, old := range s.links {
			st := newLinks[idx] // gone: zero state, down
			if !old.loopback && old.up && !st.up {
				changes = append(changes, NetChange{Kind: LinkChanged, Link: old.name, Up: false})
			}
		}
		for k, name := range s.addrs {
			if _, ok := newAddrs[k]; !ok {
				changes = append(changes, NetChange{Kind: AddrRemoved, Link: name, Addr: k.prefix})
			}
		}
		for idx, st := range newLinks {
			if !st.loopback && st.up && !s.links[idx].up {
				changes = append(changes, NetChange{Kind: LinkChanged, Link: st.name, Up: true})
			}
		}
		for k, name := range newAddrs {
			if _, ok := s.addrs[k]; !ok {
				changes = append(changes, NetChange{Kind: AddrAdded, Link: name, Addr: k.prefix})
			}
		}
		// Downs and removals first, then ups and additions, each sorted by link and address.
		slices.SortStableFunc(changes, func(a, b NetChange) int {
			return cmp.Or(cmp.Compare(netChangeRank(a), netChangeRank(b)), cmp.Compare(a.Link, b.Link),
				a.Addr.Addr().Compare(b.Addr.Addr()))
		})
		for _, c := range changes {
			s.w.emit(c)
		}
	}
	s.links, s.addrs = newLinks, newAddrs
	return nil
}

// netChangeRank orders losses (0) before gains (1).
func netChangeRank(c NetChange) int {
	if c.Kind == AddrRemoved || (c.Kind == LinkChanged && !c.Up) {
		return 0
	}
	return 1
}

// dumpRetry retries a netlink dump the kernel interrupted (state changed mid-dump); after
// dumpAttempts it accepts the possibly incomplete result.
func dumpRetry[T any](list func() ([]T, error)) ([]T, error) {
	for i := 1; ; i++ {
		res, err := list()
		if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) {
			return res, err
		}
		if i == dumpAttempts {
			log.Debugw("netlink dump still interrupted, using partial result", "attempts", i)
			return res, nil
		}
	}
}
