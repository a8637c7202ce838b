package main

import (
	"net"
	"net/http"
	"sync"
)

// connLimiter caps the connections an http.Server holds at once. When a
// client connects while max connections are open, the keep-alive connection
// idle longest is closed to make room (a client waiting to be served matters
// more than one that may never send another request), or, if none is idle,
// the new client waits until one is or a connection ends; clients behind it
// wait in the kernel's accept queue, holding no file descriptor or goroutine
// in the process. So at most max+1 connections are held, and 1,000 clients
// that each send one request and keep the connection cannot lock out the
// next /healthz.
//
// Use listener() as the server's listener and connState as its ConnState.
// Safe for concurrent use.
type connLimiter struct {
	net.Listener
	slots  chan struct{} // one token per open connection
	idleCh chan struct{} // capacity 1: a connection became idle
	done   chan struct{} // closed by Close: Accept stops waiting

	mu        sync.Mutex
	idle      map[net.Conn]uint64 // keep-alive connections between requests, by when they became idle
	seq       uint64
	closeOnce sync.Once
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, slots: make(chan struct{}, max), idleCh: make(chan struct{}, 1), done: make(chan struct{}), idle: map[net.Conn]uint64{}}
}

// Accept accepts a connection and waits for a slot for it, closing idle
// connections to make one.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	for {
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		l.closeIdlest()
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		case <-l.idleCh: // try again: close it
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		}
	}
}

// Close closes the listener and stops a waiting Accept.
func (l *connLimiter) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// connState tracks which connections are idle; it is the server's ConnState.
func (l *connLimiter) connState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if state == http.StateIdle {
		l.seq++
		l.idle[c] = l.seq
		select {
		case l.idleCh <- struct{}{}:
		default:
		}
	} else {
		delete(l.idle, c)
	}
}

// closeIdlest closes the connection that has been idle longest, if any.
func (l *connLimiter) closeIdlest() {
	l.mu.Lock()
	var oldest net.Conn
	var at uint64
	for c, seq := range l.idle {
		if oldest == nil || seq < at {
			oldest, at = c, seq
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest != nil {
		oldest.Close() // the server sees the error and moves it to StateClosed
	}
}

// limitedConn gives its slot back when closed (once, however often Close is called).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
