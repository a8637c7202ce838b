//go:build linux

package netwatch

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
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

// startNetlink subscribes to the kernel's link, address and route changes over
// rtnetlink (github.com/vishvananda/netlink), reads the baseline and starts the
// goroutine that reports changes.
func (w *Watcher) startNetlink() error {
	if w.cfg.netlinkErr != nil {
		return w.cfg.netlinkErr
	}
	s := &nlWatch{
		w:      w,
		cfg:    w.cfg,
		ns:     netns.None(),
		links:  make(map[int]linkState),
		addrs:  make(map[addrKey]string),
		routes: make(map[routeKey]Change),
	}
	if w.cfg.ns.IsOpen() {
		fd, err := unix.FcntlInt(uintptr(w.cfg.ns), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("duplicate namespace handle %d: %w", int(w.cfg.ns), err)
		}
		s.ns = netns.NsHandle(fd)
	}
	if err := s.start(); err != nil {
		s.release()
		return err
	}
	w.wg.Add(1)
	go s.run()
	return nil
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

// routeKey identifies a default route.
type routeKey struct {
	family   int
	table    int
	index    int // output link; 0 for a multipath route
	gw       netip.Addr
	priority int
}

// nlWatch is the state of the netlink goroutine. Everything except cfg, ns and w is
// touched only by that goroutine (or by startNetlink before it starts).
type nlWatch struct {
	w   *Watcher
	cfg config
	ns  netns.NsHandle // our own duplicate, or netns.None() for the caller's namespace

	handle  *netlink.Handle          // queries: dumps, link lookups
	links   map[int]linkState        // by link index
	addrs   map[addrKey]string       // reported addresses -> link name
	routes  map[routeKey]Change      // default routes -> their DefaultRouteGained change
	linkCh  chan netlink.LinkUpdate  // nil while not subscribed
	addrCh  chan netlink.AddrUpdate  // nil while not subscribed
	routeCh chan netlink.RouteUpdate // nil while not subscribed
	linkDn  chan struct{}            // closes the link subscription
	addrDn  chan struct{}            // closes the address subscription
	routeDn chan struct{}            // closes the route subscription
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
		if s.routeCh == nil {
			ch, dn := make(chan netlink.RouteUpdate, nlChanBuffer), make(chan struct{})
			opts := netlink.RouteSubscribeOptions{
				ErrorCallback:          s.onError("route", dn),
				ReceiveBufferSize:      s.cfg.recvBuf,
				ReceiveBufferForceSize: s.cfg.recvBuf > 0,
			}
			if s.ns.IsOpen() {
				opts.Namespace = &s.ns
			}
			if err := netlink.RouteSubscribeWithOptions(ch, dn, opts); err != nil {
				close(dn)
				return fmt.Errorf("subscribe to route changes: %w", err)
			}
			s.routeCh, s.routeDn = ch, dn
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

// unsubscribe closes a subscription and waits for netlink's receive goroutine,
// draining updates it may be blocked sending.
func unsubscribe[T any](ch *chan T, dn *chan struct{}) {
	if *ch == nil {
		return
	}
	close(*dn)
	for range *ch {
	}
	*ch, *dn = nil, nil
}

// release stops the subscriptions and frees the handle and namespace reference.
func (s *nlWatch) release() {
	unsubscribe(&s.linkCh, &s.linkDn)
	unsubscribe(&s.addrCh, &s.addrDn)
	unsubscribe(&s.routeCh, &s.routeDn)
	if s.handle != nil {
		s.handle.Close()
		s.handle = nil
	}
	if s.ns.IsOpen() {
		_ = s.ns.Close()
	}
}

// dead forgets a subscription whose receive goroutine gave up (it closed ch).
func dead[T any](ch *chan T, dn *chan struct{}) {
	close(*dn)
	*ch, *dn = nil, nil
}

func (s *nlWatch) run() {
	defer s.w.wg.Done()
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
	// repair runs after netlink's receive goroutine gave up (typically ENOBUFS: the
	// kernel dropped notifications): it resubscribes and reports the difference
	// between a fresh dump and what the watcher last knew.
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
				dead(&s.linkCh, &s.linkDn)
				repair()
				continue
			}
			s.testHook()
			if s.onLink(u) {
				s.syncRoutes() // the kernel drops a down link's routes without telling
			}
		case u, ok := <-s.addrCh:
			if !ok {
				dead(&s.addrCh, &s.addrDn)
				repair()
				continue
			}
			s.testHook()
			if s.onAddr(u) {
				s.syncRoutes() // routes through a removed address go silently too
			}
		case u, ok := <-s.routeCh:
			if !ok {
				dead(&s.routeCh, &s.routeDn)
				repair()
				continue
			}
			s.testHook()
			s.onRoute(u)
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

// onLink handles a link update; it reports whether the link went down.
func (s *nlWatch) onLink(u netlink.LinkUpdate) (down bool) {
	if u.Link == nil {
		return false
	}
	idx := int(u.Index)
	old, known := s.links[idx]
	if u.Header.Type == unix.RTM_DELLINK {
		delete(s.links, idx)
		if known && old.up && !old.loopback {
			s.w.signal(Change{Kind: LinkDown, Link: old.name})
			return true
		}
		return false
	}
	st := linkStateOf(u.Attrs())
	s.links[idx] = st
	if st.loopback || st.up == old.up { // an unknown link counts as down
		return false
	}
	if st.up {
		s.w.signal(Change{Kind: LinkUp, Link: st.name})
		return false
	}
	s.w.signal(Change{Kind: LinkDown, Link: st.name})
	return true
}

// onAddr handles an address update; it reports whether a reported address went away.
func (s *nlWatch) onAddr(u netlink.AddrUpdate) (removed bool) {
	p, ok := prefixFromIPNet(u.LinkAddress)
	if !ok {
		return false
	}
	key := addrKey{index: u.LinkIndex, prefix: p}
	name, known := s.addrs[key]
	usable := u.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 // IPv6 DAD still running or failed
	if !u.NewAddr || !usable {
		if known {
			delete(s.addrs, key)
			s.w.signal(Change{Kind: AddrRemoved, Link: name, Addr: p})
			return true
		}
		return false
	}
	if known || !reportableAddr(p.Addr()) {
		return false
	}
	st, ok := s.linkByIndex(u.LinkIndex)
	if !ok || st.loopback {
		return false
	}
	s.addrs[key] = st.name
	s.w.signal(Change{Kind: AddrAdded, Link: st.name, Addr: p})
	return false
}

func (s *nlWatch) onRoute(u netlink.RouteUpdate) {
	key, c, ok := s.defaultRoute(u.Route)
	if !ok {
		return
	}
	_, known := s.routes[key]
	switch {
	case u.Type == unix.RTM_DELROUTE && known:
		delete(s.routes, key)
		c.Kind = DefaultRouteLost
		s.w.signal(c)
	case u.Type == unix.RTM_NEWROUTE && !known:
		s.routes[key] = c
		s.w.signal(c)
	}
}

// defaultRoute returns the key and the DefaultRouteGained change of r if r is a
// unicast default route outside the local table.
func (s *nlWatch) defaultRoute(r netlink.Route) (routeKey, Change, bool) {
	if r.Table == unix.RT_TABLE_LOCAL || (r.Type != 0 && r.Type != unix.RTN_UNICAST) {
		return routeKey{}, Change{}, false
	}
	if r.Dst != nil {
		if ones, _ := r.Dst.Mask.Size(); ones != 0 || !r.Dst.IP.IsUnspecified() {
			return routeKey{}, Change{}, false
		}
	}
	key := routeKey{family: r.Family, table: r.Table, index: r.LinkIndex, priority: r.Priority}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		key.gw = gw.Unmap()
	}
	c := Change{Kind: DefaultRouteGained, Gateway: key.gw}
	if r.LinkIndex > 0 {
		if st, ok := s.linkByIndex(r.LinkIndex); ok {
			c.Link = st.name
		}
	}
	return key, c, true
}

// syncRoutes re-reads the default routes and reports the difference: the kernel
// removes the routes of a link that went down, or through an address that went
// away, without a notification for each.
func (s *nlWatch) syncRoutes() {
	routes, err := s.listDefaultRoutes()
	if err != nil {
		log.Debugw("list routes", "err", err)
		return
	}
	s.reportRoutes(routes)
	s.routes = routes
}

func (s *nlWatch) reportRoutes(routes map[routeKey]Change) {
	var cs []Change
	for k, c := range s.routes {
		if _, ok := routes[k]; !ok {
			c.Kind = DefaultRouteLost
			cs = append(cs, c)
		}
	}
	for k, c := range routes {
		if _, ok := s.routes[k]; !ok {
			cs = append(cs, c)
		}
	}
	sortChanges(cs)
	for _, c := range cs {
		s.w.signal(c)
	}
}

func (s *nlWatch) listDefaultRoutes() (map[routeKey]Change, error) {
	rs, err := dumpRetry(func() ([]netlink.Route, error) {
		return s.handle.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[routeKey]Change)
	for _, r := range rs {
		if k, c, ok := s.defaultRoute(r); ok {
			out[k] = c
		}
	}
	return out, nil
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
		log.Debugw("address or route on unknown link", "index", idx, "err", err)
		return linkState{}, false
	}
	return linkStateOf(l.Attrs()), true
}

// sync dumps the kernel's links, addresses and default routes. With report false the
// dump becomes the baseline; with report true (after lost notifications) differences
// to what the watcher last knew are reported first.
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
		var changes []Change
		for idx, old := range s.links {
			st := newLinks[idx] // gone: zero state, down
			if !old.loopback && old.up && !st.up {
				changes = append(changes, Change{Kind: LinkDown, Link: old.name})
			}
		}
		for k, name := range s.addrs {
			if _, ok := newAddrs[k]; !ok {
				changes = append(changes, Change{Kind: AddrRemoved, Link: name, Addr: k.prefix})
			}
		}
		for idx, st := range newLinks {
			if !st.loopback && st.up && !s.links[idx].up {
				changes = append(changes, Change{Kind: LinkUp, Link: st.name})
			}
		}
		for k, name := range newAddrs {
			if _, ok := s.addrs[k]; !ok {
				changes = append(changes, Change{Kind: AddrAdded, Link: name, Addr: k.prefix})
			}
		}
		sortChanges(changes)
		for _, c := range changes {
			s.w.signal(c)
		}
	}
	s.links, s.addrs = newLinks, newAddrs

	routes, err := s.listDefaultRoutes()
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	if report {
		s.reportRoutes(routes)
	}
	s.routes = routes
	return nil
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

// runInNamespace runs f on a fresh thread inside ns (the calling thread's namespace
// for netns.None()). The thread stays locked until its goroutine ends, so the runtime
// retires it: no other goroutine ever runs on a thread left in ns.
func runInNamespace(ns netns.NsHandle, f func() error) error {
	if !ns.IsOpen() {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
