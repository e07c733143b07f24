package router

import (
	"bufio"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// IdlePoolTimeout is how long the router keeps an idle connection to a
// backend for reuse.
const IdlePoolTimeout = 90 * time.Second

// maxIdlePerUpstream bounds the idle connections kept per backend address.
const maxIdlePerUpstream = 256

// upstream is one backend address and its pool of keep-alive connections.
// It is shared by every table that routes to the address, so connections
// survive table swaps; it is retired when no table uses it and its idle
// connections are closed once its last request is done.
type upstream struct {
	addr      string
	dialer    net.Dialer
	inflight  atomic.Int64
	heldUntil atomic.Int64 // unix nanoseconds; skipped by picks until then
	retired   atomic.Bool

	mu   sync.Mutex
	idle []*backendConn // most recently used last
}

func newUpstream(addr string, dialTimeout time.Duration) *upstream {
	return &upstream{addr: addr, dialer: net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}}
}

// backendConn is one connection to a backend.
type backendConn struct {
	conn   net.Conn
	raw    syscall.RawConn
	br     *bufio.Reader
	up     *upstream
	idleAt time.Time
	reused bool // it carried a request before this one

	// probe and send state, kept here so neither allocates
	probe    func(fd uintptr) bool
	probeBuf [1]byte
	alive    bool
	sendFn   func(fd uintptr) bool
	out      []byte
	outN     int
	waiting  bool
	stale    bool
	partial  bool
	sendErr  error
}

// get returns a connection to the address: the most recently used idle
// one, or a new one. A pooled one may have been closed by the backend
// meanwhile: send finds that out before it writes.
func (u *upstream) get(now time.Time) (*backendConn, error) {
	for {
		u.mu.Lock()
		n := len(u.idle)
		if n == 0 {
			u.mu.Unlock()
			break
		}
		bc := u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		if now.Sub(bc.idleAt) < IdlePoolTimeout {
			return bc, nil
		}
		bc.close()
	}
	return u.dial()
}

func (u *upstream) dial() (*backendConn, error) {
	c, err := u.dialer.DialContext(context.Background(), "tcp", u.addr)
	if err != nil {
		return nil, err
	}
	bc := &backendConn{conn: c, br: bufio.NewReaderSize(c, 4<<10), up: u}
	if sc, ok := c.(syscall.Conn); ok {
		bc.raw, _ = sc.SyscallConn()
	}
	bc.probe = bc.probeFD
	bc.sendFn = bc.sendStep
	return bc, nil
}

// send writes a request (head and buffered body) and returns once its
// answer starts to arrive; n is how much of data left. stale means the
// backend had closed this pooled connection (or sent something unasked)
// and nothing was written: the caller takes another.
//
// It runs as one RawRead: the poller's read readiness is reset before the
// request leaves, so the answer cannot slip by unseen, and the first read,
// which would only say "not yet", is not made. The check that the connection
// is open is a read made after that reset, so an end of stream that came in
// while the connection sat idle is seen too. A request that does not fit
// the socket's buffer at once is finished through the poller.
func (bc *backendConn) send(data []byte) (n int, stale bool, err error) {
	if bc.raw == nil {
		n, err = bc.conn.Write(data)
		return n, false, err
	}
	bc.out, bc.outN, bc.waiting, bc.stale, bc.partial, bc.sendErr = data, 0, false, false, false, nil
	rerr := bc.raw.Read(bc.sendFn)
	n, bc.out = bc.outN, nil
	switch {
	case bc.stale:
		return n, true, nil
	case bc.sendErr != nil:
		return n, false, bc.sendErr
	case bc.partial:
		m, err := bc.conn.Write(data[n:])
		return n + m, false, err
	}
	return n, false, rerr
}

// sendStep is send's RawRead callback: on the first call it checks a
// reused connection and writes; false then waits for the answer, and the
// call after the wait ends it.
func (bc *backendConn) sendStep(fd uintptr) bool {
	if bc.waiting {
		return true
	}
	// Even a new connection is checked: a backend that accepts and at
	// once closes would otherwise leave nothing to wake the wait below.
	if _, err := syscall.Read(int(fd), bc.probeBuf[:]); err != syscall.EAGAIN {
		bc.stale = true
		return true
	}
	for bc.outN < len(bc.out) {
		n, err := syscall.Write(int(fd), bc.out[bc.outN:])
		if n > 0 {
			bc.outN += n
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			bc.partial = true
			return true
		case err != nil:
			bc.sendErr = err
			return true
		}
	}
	bc.waiting = true
	return false
}

// stillOpen checks, without waiting, that the backend has not closed an
// idle connection (or sent something unasked), for the reaper.
func (bc *backendConn) stillOpen() bool {
	if bc.br.Buffered() > 0 {
		return false
	}
	if bc.raw == nil {
		return true
	}
	bc.alive = false
	if err := bc.raw.Read(bc.probe); err != nil {
		return false
	}
	return bc.alive
}

// probeFD reads the non-blocking socket once: "would block" means open and
// quiet; end of stream, data or an error mean the connection is done.
func (bc *backendConn) probeFD(fd uintptr) bool {
	_, err := syscall.Read(int(fd), bc.probeBuf[:])
	bc.alive = err == syscall.EAGAIN
	return true
}

// put returns a connection whose last response was read whole to the pool.
func (u *upstream) put(bc *backendConn, now time.Time) {
	if u.retired.Load() {
		bc.close()
		return
	}
	bc.idleAt, bc.reused = now, true
	u.mu.Lock()
	if len(u.idle) >= maxIdlePerUpstream {
		u.mu.Unlock()
		bc.close()
		return
	}
	u.idle = append(u.idle, bc)
	u.mu.Unlock()
}

func (bc *backendConn) close() { bc.conn.Close() }

func (u *upstream) begin() { u.inflight.Add(1) }

func (u *upstream) end() {
	if u.inflight.Add(-1) == 0 && u.retired.Load() {
		u.closeIdle()
	}
}

// retire marks the address unused by the current table.
func (u *upstream) retire() {
	u.retired.Store(true)
	if u.inflight.Load() == 0 {
		u.closeIdle()
	}
}

// closeIdle closes every idle connection.
func (u *upstream) closeIdle() {
	u.mu.Lock()
	idle := u.idle
	u.idle = nil
	u.mu.Unlock()
	for _, bc := range idle {
		bc.close()
	}
}

// reap closes idle connections that timed out or that the backend closed,
// so they do not linger while no request comes to reuse them.
func (u *upstream) reap(now time.Time) {
	u.mu.Lock()
	var keep, drop []*backendConn
	for _, bc := range u.idle {
		if now.Sub(bc.idleAt) >= IdlePoolTimeout || !bc.stillOpen() {
			drop = append(drop, bc)
		} else {
			keep = append(keep, bc)
		}
	}
	u.idle = keep
	u.mu.Unlock()
	for _, bc := range drop {
		bc.close()
	}
}

// holdOut skips the address until then; it reports whether the address was
// usable before, so the start of a hold-out is logged once, not per request.
func (u *upstream) holdOut(now, until time.Time) bool {
	return u.heldUntil.Swap(until.UnixNano()) <= now.UnixNano()
}

func (u *upstream) heldOut(now time.Time) bool { return now.UnixNano() < u.heldUntil.Load() }
