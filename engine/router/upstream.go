package router

import (
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// upstream is one backend address and the long-lived transport that talks
// to it. It is shared by every table that routes to the address, so keep-alive
// connections survive table swaps; it is retired when no table uses it and
// its idle connections are closed once its last request is done.
type upstream struct {
	addr      string
	transport *http.Transport
	inflight  atomic.Int64
	heldUntil atomic.Int64 // unix nanoseconds; skipped by picks until then
	retired   atomic.Bool
}

// IdlePoolTimeout is how long the router keeps an idle connection to a
// backend for reuse.
const IdlePoolTimeout = 90 * time.Second

func newUpstream(addr string, dialTimeout time.Duration) *upstream {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &upstream{
		addr: addr,
		transport: &http.Transport{
			Proxy:                 nil, // backends are local: never an environment proxy
			DialContext:           dialer.DialContext,
			MaxIdleConns:          0,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       IdlePoolTimeout,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true, // pass encodings through untouched
			ForceAttemptHTTP2:     false,
		},
	}
}

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

// closeIdle closes idle connections now and once more a moment later: a
// connection is handed back to the idle pool asynchronously after its last
// response body is read.
func (u *upstream) closeIdle() {
	u.transport.CloseIdleConnections()
	time.AfterFunc(time.Second, u.transport.CloseIdleConnections)
}

// holdOut skips the address until then; it reports whether the address was
// usable before, so the start of a hold-out is logged once, not per request.
func (u *upstream) holdOut(now, until time.Time) bool {
	return u.heldUntil.Swap(until.UnixNano()) <= now.UnixNano()
}

func (u *upstream) heldOut(now time.Time) bool { return now.UnixNano() < u.heldUntil.Load() }
