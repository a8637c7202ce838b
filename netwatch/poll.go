package netwatch

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// ifaceState is what the polling source reads of one interface.
type ifaceState struct {
	name     string
	up       bool // FlagUp and FlagRunning
	loopback bool
	addrs    []netip.Prefix
}

// listInterfaces reads the interfaces of the calling thread's namespace with the
// standard library (on Linux a netlink dump, elsewhere the platform's routing
// socket or API).
func listInterfaces() ([]ifaceState, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]ifaceState, 0, len(ifs))
	for _, ifi := range ifs {
		st := ifaceState{
			name:     ifi.Name,
			up:       ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagRunning != 0,
			loopback: ifi.Flags&net.FlagLoopback != 0,
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifi.Name, err)
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if p, ok := prefixFromIPNet(*n); ok {
					st.addrs = append(st.addrs, p)
				}
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// pollState is a snapshot the polling source compares.
type pollState struct {
	links map[string]bool         // non-loopback links: up and running
	addrs map[netip.Prefix]string // reportable addresses -> link
}

func snapshot(ifs []ifaceState) pollState {
	s := pollState{links: map[string]bool{}, addrs: map[netip.Prefix]string{}}
	for _, i := range ifs {
		if i.loopback {
			continue
		}
		s.links[i.name] = i.up
		for _, p := range i.addrs {
			if reportableAddr(p.Addr()) {
				s.addrs[p] = i.name
			}
		}
	}
	return s
}

// diff returns the changes from old to cur: losses first, then gains, each sorted by
// link and address, so a burst reads in a stable order.
func diff(old, cur pollState) []Change {
	var cs []Change
	for name, up := range old.links {
		if up && !cur.links[name] {
			cs = append(cs, Change{Kind: LinkDown, Link: name})
		}
	}
	for p, name := range old.addrs {
		if _, ok := cur.addrs[p]; !ok {
			cs = append(cs, Change{Kind: AddrRemoved, Link: name, Addr: p})
		}
	}
	for name, up := range cur.links {
		if up && !old.links[name] {
			cs = append(cs, Change{Kind: LinkUp, Link: name})
		}
	}
	for p, name := range cur.addrs {
		if _, ok := old.addrs[p]; !ok {
			cs = append(cs, Change{Kind: AddrAdded, Link: name, Addr: p})
		}
	}
	sortChanges(cs)
	return cs
}

// sortChanges orders losses before gains, then by link, address and gateway.
func sortChanges(cs []Change) {
	rank := func(c Change) int {
		if c.Kind.Lost() {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(cs, func(a, b Change) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Link, b.Link),
			a.Addr.Addr().Compare(b.Addr.Addr()), a.Gateway.Compare(b.Gateway))
	})
}

// startPolling reads the baseline and starts the polling goroutine. A failing
// listing (for example a sandbox that denies even the standard library's netlink
// dump) is logged and retried every interval; sleep detection works regardless.
func (w *Watcher) startPolling(interval time.Duration) error {
	list := w.cfg.interfaces
	if list == nil {
		list = func() (ifs []ifaceState, err error) {
			err = runInNamespace(w.cfg.ns, func() error {
				ifs, err = listInterfaces()
				return err
			})
			return ifs, err
		}
	}
	var last pollState
	ifs, err := list()
	if err != nil {
		log.Warnw("cannot list network interfaces; retrying every poll", "err", err, "interval", interval)
	} else {
		last = snapshot(ifs)
	}
	known := err == nil
	w.polling = true
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
			}
			ifs, err := list()
			if err != nil {
				log.Debugw("list network interfaces", "err", err)
				continue
			}
			cur := snapshot(ifs)
			if known {
				for _, c := range diff(last, cur) {
					w.signal(c)
				}
			}
			last, known = cur, true
		}
	}()
	return nil
}
