package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// noBackendBody is what clients get when no backend can take their request.
const noBackendBody = "cutover router: no backend for this service\n"

const (
	// proxyIdleTimeout closes a client connection idle this long.
	proxyIdleTimeout = 120 * time.Second
	// proxyHeaderTimeout bounds reading a request head once it started.
	proxyHeaderTimeout = 30 * time.Second
	// watchDelay is how long a request may wait for its backend before the
	// router starts watching its client for a hang-up: a client that went
	// away cancels its backend request. Faster requests never pay for it.
	watchDelay = 10 * time.Millisecond
	// expectContinueTimeout is how long a streamed body waits for the
	// backend's 100 Continue before it is sent anyway, as net/http does.
	expectContinueTimeout = time.Second
	// copyBufSize is the buffer a body is relayed through.
	copyBufSize = 32 << 10
)

// statusClientClosed is nginx's code for a client that went away before the
// response; it is counted as 4xx, not as a backend failure.
const statusClientClosed = 499

// choice says how a request selects its backend.
type choice struct {
	version string // "" means any version
	forced  bool   // version came from the version header: never fall back
}

// Client connection states, for Shutdown: an idle connection may be closed,
// an active one is waited for, an upgraded one (a WebSocket) is neither.
const (
	stateIdle int32 = iota
	stateActive
	stateUpgraded
	stateClosed
)

// Watcher states.
const (
	watchOff int32 = iota
	watchArmed
	watchRunning
)

// copyBufs lends relays their buffer.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// clientConn is one client connection and everything its requests reuse:
// the parsed heads, the body readers, the output buffers.
type clientConn struct {
	s        *Server
	conn     net.Conn
	br       *bufio.Reader
	out      outBuf // to the client
	bout     outBuf // to the backend of the current attempt
	req      request
	res      response
	reqBody  bodyReader
	resBody  bodyReader
	body     []byte // the request body, when buffered for replay
	remoteIP []byte
	state    atomic.Int32
	start    time.Time // when the current request's head was read
	deadline time.Time // the read deadline set on conn

	cookie    string // the sticky cookie's value in the request
	hasCookie bool

	// The hang-up watcher: a timer that, once a request is slow, reads the
	// client connection in its own goroutine. A byte read ahead (the next
	// pipelined request) is kept in pending.
	pending    int
	watch      *time.Timer
	watchState atomic.Int32
	watchDone  chan struct{}
	watched    atomic.Pointer[backendConn]
	clientGone atomic.Bool
}

func newClientConn(s *Server, conn net.Conn) *clientConn {
	c := &clientConn{s: s, conn: conn, pending: -1, watchDone: make(chan struct{}, 1)}
	c.br = bufio.NewReaderSize(c, 4<<10)
	c.out.reset(conn)
	c.out.b = make([]byte, 0, 8<<10)
	c.bout.b = make([]byte, 0, 8<<10)
	if host, _, err := net.SplitHostPort(conn.RemoteAddr().String()); err == nil {
		c.remoteIP = []byte(host)
	}
	return c
}

// Read feeds the connection's bufio.Reader, the watcher's byte first.
func (c *clientConn) Read(p []byte) (int, error) {
	if c.pending >= 0 && len(p) > 0 {
		p[0] = byte(c.pending)
		c.pending = -1
		return 1, nil
	}
	return c.conn.Read(p)
}

// serve answers requests until the connection ends.
func (c *clientConn) serve() {
	defer func() {
		if c.watch != nil {
			c.watch.Stop()
		}
		c.state.Store(stateClosed)
		c.conn.Close()
		c.s.untrack(c)
	}()
	for c.serveOne() {
	}
}

// serveOne reads and answers one request; false ends the connection.
func (c *clientConn) serveOne() bool {
	s := c.s
	c.state.Store(stateIdle)
	if s.shuttingDown.Load() {
		return false
	}
	if c.br.Buffered() == 0 {
		// The idle deadline moves at most once a second: setting it per
		// request would cost a timer update each time.
		if now := time.Now(); c.deadline.Before(now.Add(proxyIdleTimeout - time.Second)) {
			c.setReadDeadline(now.Add(proxyIdleTimeout))
		}
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
	}
	if !c.state.CompareAndSwap(stateIdle, stateActive) {
		return false // Shutdown closed the idle connection
	}
	if !c.headBuffered() {
		// A head still coming in gets proxyHeaderTimeout to arrive.
		c.setReadDeadline(time.Now().Add(proxyHeaderTimeout))
	}
	c.req.reset()
	var err error
	c.req.buf, err = readHead(c.br, c.req.buf)
	if err == nil {
		err = parseRequest(&c.req)
	}
	if err != nil {
		var se *statusError
		switch {
		case errors.As(err, &se):
			c.writeSimple(se.status, "cutover router: "+se.msg+"\n", false, true)
		case err == errHeadTooLarge:
			c.writeSimple(http.StatusRequestHeaderFieldsTooLarge, "cutover router: "+err.Error()+"\n", false, true)
		}
		return false
	}
	return c.forward()
}

// setReadDeadline sets the client connection's read deadline and
// remembers it.
func (c *clientConn) setReadDeadline(t time.Time) {
	c.deadline = t
	c.conn.SetReadDeadline(t)
}

// headBuffered reports whether a whole request head is already read in, so
// reading it cannot wait on the client.
func (c *clientConn) headBuffered() bool {
	p, _ := c.br.Peek(c.br.Buffered())
	return bytes.Contains(p, []byte("\n\r\n")) || bytes.Contains(p, []byte("\n\n"))
}

// attempt is the routing state of one request: the backend it is on and
// what may be done if that backend fails.
type attempt struct {
	entry      *entry
	choice     choice
	replayable bool // the body is in memory (or absent): it can be sent again
	retried    bool
}

// forward routes the request read into c.req and relays the answer; false
// ends the connection.
func (c *clientConn) forward() bool {
	s := c.s
	c.start = s.now()
	c.clientGone.Store(false)
	req := &c.req
	at := attempt{choice: c.choose()}
	streamed := false
	c.body = c.body[:0]
	switch {
	case req.body == bodyNone:
		at.replayable = true
	case req.body == bodyLength && req.length > s.opts.MaxReplayBody:
		streamed = true
	default:
		fits, err := c.bufferBody()
		if err != nil {
			if errors.Is(err, errBadChunk) {
				c.writeSimple(http.StatusBadRequest, "cutover router: reading request body: "+err.Error()+"\n", false, true)
			}
			return false
		}
		streamed, at.replayable = !fits, fits
	}
	at.entry = s.acquire(func(t *table) *entry { return s.pick(t, at.choice, nil) })
	if at.entry == nil {
		s.noBackend.Add(1)
		msg := noBackendBody
		if at.choice.forced {
			msg = "cutover router: no backend for version " + at.choice.version + "\n"
		}
		// A body left unread would be taken for the next request.
		keep := !streamed && req.keepAlive() && !s.shuttingDown.Load()
		return c.writeSimple(http.StatusServiceUnavailable, msg, true, !keep) == nil && keep
	}
	if streamed {
		return c.forwardStreamed(&at)
	}
	return c.forwardBuffered(&at)
}

// bufferBody reads the request body into c.body up to the replay limit;
// fits is false when it is longer (c.body then holds its first part and
// the rest is still to be read from c.reqBody).
func (c *clientConn) bufferBody() (fits bool, err error) {
	req := &c.req
	if req.expectContinue {
		// The router takes the body itself, so it answers the expectation.
		c.out.str("HTTP/1.1 100 Continue\r\n\r\n")
		if err := c.out.flush(); err != nil {
			return false, err
		}
		req.expectContinue = false
	}
	limit := c.s.opts.MaxReplayBody
	c.reqBody.reset(c.br, req.body, req.length)
	for int64(len(c.body)) <= limit {
		if len(c.body) == cap(c.body) {
			c.body = append(c.body, 0)[:len(c.body)]
		}
		end := min(cap(c.body), len(c.body)+int(limit+1-int64(len(c.body))))
		n, err := c.reqBody.Read(c.body[len(c.body):end])
		c.body = c.body[:len(c.body)+n]
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

// forwardBuffered sends a request whose body is in memory (or absent),
// replaying it once on another backend when its backend failed in a way the
// replay rules allow.
func (c *clientConn) forwardBuffered(at *attempt) bool {
	s := c.s
	fresh := false
	for {
		e := at.entry
		ex := c.exchange(e, fresh)
		switch {
		case ex.done:
			return ex.keep
		case ex.clientGone:
			c.finish(e, outcome{status: statusClientClosed})
			return false
		}
		// No response came from e.
		if ex.reused && !fresh && at.replayable && c.mayReplay(ex) {
			// Most likely the backend closed the pooled connection as the
			// request went out: try once more on a new one.
			fresh = true
			continue
		}
		if !ex.reused {
			// A reused connection may have raced the backend's idle close:
			// that says nothing about the backend's health.
			c.holdOut(e, ex.err)
		}
		now := s.now()
		if !at.retried && at.replayable && c.mayReplay(ex) {
			next := s.acquire(func(t *table) *entry { return s.pick(t, at.choice, e) })
			if next == nil && at.choice.version != "" && !at.choice.forced {
				next = s.acquire(func(t *table) *entry { return s.pick(t, choice{}, e) })
			}
			if next != nil {
				s.log.Debug("retrying on another backend", "failed", e.backend.ID, "retry", next.backend.ID, "err", ex.err)
				failed := outcome{proxyErr: true, retried: true}
				e.stats.meter.record(now, failed)
				e.version.meter.record(now, failed)
				e.end()
				at.entry, at.retried = next, true
				continue
			}
		}
		s.log.Debug("backend failed", "backend", e.backend.ID, "addr", e.backend.Addr, "err", ex.err)
		c.finish(e, outcome{proxyErr: true})
		keep := c.req.keepAlive() && !s.shuttingDown.Load()
		var err error
		if ex.dial {
			// Nothing reached a backend: for the client there is no
			// backend, which is a 503, not a bad gateway.
			err = c.writeSimple(http.StatusServiceUnavailable, noBackendBody, true, !keep)
		} else {
			err = c.writeBadGateway(e, !keep)
		}
		return err == nil && keep
	}
}

// exchangeResult is how one request on one backend went.
type exchangeResult struct {
	done       bool // the client got an answer (or the exchange ended): nothing more to do
	keep       bool // when done: keep the client connection
	clientGone bool // the client hung up before an answer
	// When neither: the connection failed before any response byte.
	err      error
	dial     bool // could not connect
	reused   bool // on a pooled connection
	bodySent bool // some of the request body left
}

// exchange sends the request, with its buffered body, to e and relays the
// answer. It records the outcome itself unless the connection failed before
// any response byte, which its caller may retry.
func (c *clientConn) exchange(e *entry, fresh bool) exchangeResult {
	s := c.s
	req := &c.req
	framing := bodyNone
	if len(c.body) > 0 || req.body != bodyNone || needsLength(req.method) {
		framing = bodyLength
	}
	c.bout.b = c.bout.b[:0]
	c.writeRequestHead(&c.bout, e, framing, int64(len(c.body)), false)
	headLen := len(c.bout.b)
	c.bout.b = append(c.bout.b, c.body...)
	var bc *backendConn
	ex := exchangeResult{}
	for {
		var err error
		if fresh {
			bc, err = e.up.dial()
		} else {
			bc, err = e.up.get(s.now())
		}
		if err != nil {
			return exchangeResult{err: err, dial: true}
		}
		ex.reused = bc.reused
		c.armWatch(bc)
		n, stale, err := bc.send(c.bout.b)
		if stale && bc.reused {
			// The backend closed it while it was idle: nothing was sent.
			bc.close()
			continue
		}
		if stale {
			err = io.EOF // a new connection the backend closed at once
		}
		ex.bodySent = n > headLen
		if err != nil {
			c.disarmWatch()
			bc.close()
			if c.clientGone.Load() {
				return exchangeResult{clientGone: true}
			}
			ex.err = err
			return ex
		}
		break
	}
	if err := c.readResponseHead(bc); err != nil {
		c.disarmWatch()
		bc.close()
		if c.clientGone.Load() {
			return exchangeResult{clientGone: true}
		}
		if connectionFailed(err) && len(c.res.buf) == 0 {
			ex.err = err
			return ex
		}
		return c.badGateway(e, err)
	}
	return c.relayResponse(e, bc)
}

// holdOut skips e's address for the hold-out after a connection failure,
// logging the start of a hold-out once.
func (c *clientConn) holdOut(e *entry, err error) {
	s := c.s
	now := s.now()
	if e.up.holdOut(now, now.Add(s.opts.HoldOut)) {
		s.log.Warn("backend held out after a connection failure", "backend", e.backend.ID, "addr", e.backend.Addr, "for", s.opts.HoldOut, "err", err)
	}
}

// writeBadGateway answers 502 for a backend that gave no usable answer.
func (c *clientConn) writeBadGateway(e *entry, closeAfter bool) error {
	return c.writeSimple(http.StatusBadGateway, "cutover router: backend "+e.backend.ID+" did not answer\n", false, closeAfter)
}

// relayResponseBody relays the body of c.res from bc to the client as
// framing says.
func (c *clientConn) relayResponseBody(bc *backendConn, framing bodyKind) copyErr {
	c.resBody.reset(bc.br, c.res.body, c.res.length)
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	return relayBody(&c.out, &c.resBody, *bufp, framing == bodyChunked, c.req.teTrailers)
}

// needsLength reports methods whose requests carry Content-Length even with
// no body, as net/http sends them: some servers refuse a POST without it.
func needsLength(method []byte) bool {
	switch string(method) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// mayReplay says whether a request whose connection failed can be sent to
// another backend without risk of doing it twice: the connection was never
// made, the method is idempotent (or the client sent an Idempotency-Key),
// or not one byte of its body was sent (the backend cannot have acted on a
// request it did not receive). A POST reset after it was written is not
// replayed: the backend may have processed it before dying.
func (c *clientConn) mayReplay(ex exchangeResult) bool {
	if ex.dial || c.req.idempotent() || c.req.idempotencyKey {
		return true
	}
	return len(c.body) > 0 && !ex.bodySent
}

// connectionFailed reports whether err means the backend refused or dropped
// the connection before sending a (complete) response head.
func connectionFailed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNABORTED)
}

// badGateway answers 502 for a backend whose answer was malformed or cut.
func (c *clientConn) badGateway(e *entry, err error) exchangeResult {
	s := c.s
	s.log.Debug("backend failed", "backend", e.backend.ID, "addr", e.backend.Addr, "err", err)
	keep := c.req.keepAlive() && !s.shuttingDown.Load()
	werr := c.writeBadGateway(e, !keep)
	c.finish(e, outcome{proxyErr: true})
	return exchangeResult{done: true, keep: werr == nil && keep}
}

// readResponseHead reads the backend's final response head into c.res,
// relaying interim 1xx answers to HTTP/1.1 clients.
func (c *clientConn) readResponseHead(bc *backendConn) error {
	for {
		c.res.reset()
		var err error
		if c.res.buf, err = readHead(bc.br, c.res.buf); err != nil {
			return err
		}
		if err := parseResponse(&c.res, c.req.isMethod("HEAD")); err != nil {
			return err
		}
		if c.res.status >= 200 || c.res.status == 101 {
			return nil
		}
		if c.res.status == 100 || c.req.minor == 0 {
			continue // the router answered any expectation itself
		}
		c.writeResponseHead(nil, bodyNone, false)
		if err := c.out.flush(); err != nil {
			return err
		}
	}
}

// relayResponse writes the response head read into c.res and relays its
// body, then returns bc to its pool when it can carry another request.
func (c *clientConn) relayResponse(e *entry, bc *backendConn) exchangeResult {
	s := c.s
	req, res := &c.req, &c.res
	if res.status == 101 {
		if !req.wantsUpgrade() {
			c.disarmWatch()
			bc.close()
			return c.badGateway(e, errors.New("101 Switching Protocols to a request that asked for no upgrade"))
		}
		return c.tunnel(e, bc)
	}
	framing := c.clientFraming()
	closeAfter := !req.keepAlive() || s.shuttingDown.Load() || framing == bodyClose
	c.writeResponseHead(e, framing, closeAfter)
	cerr := c.relayResponseBody(bc, framing)
	c.disarmWatch()
	status := res.status
	switch {
	case c.clientGone.Load() || cerr.write != nil:
		bc.close()
		c.finish(e, outcome{status: statusClientClosed})
		return exchangeResult{done: true}
	case cerr.read != nil:
		// The backend broke off its response after its head was sent.
		bc.close()
		s.log.Debug("backend cut its response", "backend", e.backend.ID, "err", cerr.read)
		c.finish(e, outcome{proxyErr: true})
		return exchangeResult{done: true}
	}
	if res.keepAlive() {
		e.up.put(bc, s.now())
	} else {
		bc.close()
	}
	c.finish(e, outcome{status: status})
	return exchangeResult{done: true, keep: !closeAfter}
}

// writeRequestHead writes the request head for e's backend: the client's
// fields without the hop-by-hop ones, the router's X-Forwarded-* fields, and
// the framing of the body as it will be sent.
func (c *clientConn) writeRequestHead(o *outBuf, e *entry, framing bodyKind, length int64, expect bool) {
	req := &c.req
	o.bytes(req.method)
	o.str(" ")
	o.bytes(req.target)
	o.str(" HTTP/1.1\r\n")
	named := len(req.conn.named) > 0
	for i := range req.fields {
		f := &req.fields[i]
		switch f.kind {
		case fieldOther, fieldCookie, fieldIdempotencyKy:
			if !named || !req.conn.drops(f.name) {
				o.field(f.name, f.value)
			}
		}
	}
	o.str("Host: ")
	if req.hasHost {
		o.bytes(req.host)
	} else {
		o.str(e.backend.Addr) // an HTTP/1.0 request without Host
	}
	o.str("\r\nX-Forwarded-For: ")
	o.bytes(c.remoteIP)
	if req.hasHost {
		o.str("\r\nX-Forwarded-Host: ")
		o.bytes(req.host)
	}
	o.str("\r\nX-Forwarded-Proto: http\r\n")
	if req.teTrailers {
		o.str("Te: trailers\r\n")
	}
	if req.wantsUpgrade() {
		o.str("Connection: Upgrade\r\nUpgrade: ")
		o.bytes(req.upgrade)
		o.str("\r\n")
	}
	switch framing {
	case bodyLength:
		o.str("Content-Length: ")
		o.b = strconv.AppendInt(o.b, length, 10)
		o.str("\r\n")
	case bodyChunked:
		o.str("Transfer-Encoding: chunked\r\n")
	}
	if expect {
		o.str("Expect: 100-continue\r\n")
	}
	o.str("\r\n")
}

// writeResponseHead writes the head of c.res to the client: the backend's
// fields without the hop-by-hop ones, the sticky cookie when e's version is
// not the one the client has (e is nil for interim answers), and framing as
// the router sends the body.
func (c *clientConn) writeResponseHead(e *entry, framing bodyKind, closeAfter bool) {
	o, res := &c.out, &c.res
	o.str("HTTP/1.1 ")
	o.bytes(res.reason)
	o.str("\r\n")
	named := len(res.conn.named) > 0
	for i := range res.fields {
		f := &res.fields[i]
		switch f.kind {
		case fieldConnection, fieldTransferEncoding, fieldTE, fieldHopByHop:
			continue
		case fieldContentLength:
			if framing != bodyLength && framing != bodyNone {
				continue
			}
		case fieldTrailer:
			if framing != bodyChunked || res.body != bodyChunked || !c.req.teTrailers {
				continue
			}
		case fieldUpgrade:
			if res.status != 101 {
				continue
			}
		}
		if !named || !res.conn.drops(f.name) {
			o.field(f.name, f.value)
		}
	}
	if e != nil {
		if name := c.s.opts.StickyCookie; name != "" && (!c.hasCookie || c.cookie != e.backend.Version) {
			o.str("Set-Cookie: ")
			o.str((&http.Cookie{Name: name, Value: e.backend.Version, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}).String())
			o.str("\r\n")
		}
	}
	switch {
	case res.status == 101:
		o.str("Connection: Upgrade\r\n")
	case res.status < 200:
	case framing == bodyChunked:
		o.str("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case res.status < 200:
	case closeAfter:
		o.str("Connection: close\r\n")
	case c.req.minor == 0:
		o.str("Connection: keep-alive\r\n")
	}
	o.str("\r\n")
}

// writeSimple answers the client with a plain-text message of the router's
// own.
func (c *clientConn) writeSimple(status int, body string, retryAfter, closeAfter bool) error {
	o := &c.out
	o.b = o.b[:0]
	o.str("HTTP/1.1 ")
	o.b = strconv.AppendInt(o.b, int64(status), 10)
	o.str(" ")
	o.str(http.StatusText(status))
	o.str("\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n")
	if retryAfter {
		o.str("Retry-After: 1\r\n")
	}
	o.str("Content-Length: ")
	o.b = strconv.AppendInt(o.b, int64(len(body)), 10)
	o.str("\r\n")
	if closeAfter {
		o.str("Connection: close\r\n")
	} else if c.req.minor == 0 {
		o.str("Connection: keep-alive\r\n")
	}
	o.str("\r\n")
	if !c.req.isMethod("HEAD") {
		o.str(body)
	}
	return o.flush()
}

// forwardStreamed sends a request whose body is too long to keep: it is
// relayed from the client to the backend as it arrives, in a goroutine, so
// a backend that answers while it reads (an echo) never deadlocks against
// the router. Such a request is never replayed.
func (c *clientConn) forwardStreamed(at *attempt) bool {
	s := c.s
	req := &c.req
	e := at.entry
	c.setReadDeadline(time.Time{}) // an upload may take as long as it takes
	bc, err := e.up.get(s.now())
	if err == nil && bc.reused && !bc.stillOpen() {
		bc.close()
		bc, err = e.up.dial()
	}
	if err != nil {
		c.holdOut(e, err)
		c.finish(e, outcome{proxyErr: true})
		c.writeSimple(http.StatusServiceUnavailable, noBackendBody, true, true)
		return false
	}
	framing := req.body
	prefix := len(c.body) > 0 // a chunked body longer than the limit: its first part is read
	if !prefix {
		c.reqBody.reset(c.br, req.body, req.length)
	}
	expect := req.expectContinue && !prefix
	c.bout.reset(bc.conn)
	c.writeRequestHead(&c.bout, e, framing, req.length, expect)
	if prefix {
		c.bout.b = strconv.AppendUint(c.bout.b, uint64(len(c.body)), 16)
		c.bout.str("\r\n")
		c.bout.write(c.body)
		c.bout.str("\r\n")
	}
	if err := c.bout.flush(); err != nil {
		bc.close()
		c.finish(e, outcome{proxyErr: true})
		c.writeBadGateway(e, true)
		return false
	}
	up := newBodyUpload(c, bc, framing == bodyChunked)
	if !expect {
		up.begin()
	}
	// continue100 answers the client's expectation once the backend (or
	// its silence) said to go on, and lets the body go.
	continue100 := func() {
		if !up.started {
			c.out.str("HTTP/1.1 100 Continue\r\n\r\n")
			c.out.flush()
			up.begin()
		}
	}
	var headErr error
	if expect {
		bc.conn.SetReadDeadline(time.Now().Add(expectContinueTimeout))
	}
	for {
		c.res.reset()
		c.res.buf, headErr = readHead(bc.br, c.res.buf)
		if ne, ok := headErr.(net.Error); ok && ne.Timeout() && !up.started && len(c.res.buf) == 0 {
			// No 100 Continue in time: send the body anyway.
			bc.conn.SetReadDeadline(time.Time{})
			continue100()
			continue
		}
		if headErr == nil {
			headErr = parseResponse(&c.res, req.isMethod("HEAD"))
		}
		if headErr != nil || c.res.status >= 200 || c.res.status == 101 {
			break
		}
		if c.res.status == 100 {
			bc.conn.SetReadDeadline(time.Time{})
			continue100()
			continue
		}
		if req.minor == 1 {
			c.writeResponseHead(nil, bodyNone, false)
			c.out.flush()
		}
	}
	bc.conn.SetReadDeadline(time.Time{})
	if headErr == nil && c.res.status == 101 {
		headErr = errors.New("101 Switching Protocols to a request with a body")
	}
	if headErr != nil {
		bodyErr := up.finish(0)
		bc.close()
		if bodyErr.read != nil && bodyErr.read != errBodyNotSent && !errors.Is(bodyErr.read, errBadChunk) {
			c.finish(e, outcome{status: statusClientClosed}) // the client went away
			return false
		}
		s.log.Debug("backend failed", "backend", e.backend.ID, "addr", e.backend.Addr, "err", headErr)
		c.finish(e, outcome{proxyErr: true})
		c.writeBadGateway(e, true)
		return false
	}
	if !up.started {
		up.finish(0) // a final answer before 100 Continue: the body is not sent
	}
	// The response is relayed while the body may still be going up.
	res := &c.res
	framing = c.clientFraming()
	// The client connection can be kept only if its whole body was read,
	// which must be known before the head says so.
	closeAfter := !req.keepAlive() || s.shuttingDown.Load() || framing == bodyClose || !up.finishedWell()
	c.writeResponseHead(e, framing, closeAfter)
	cerr := c.relayResponseBody(bc, framing)
	// An echo ends its answer as the body ends; a backend that answered
	// early and stopped reading gets a moment, then is cut off.
	grace := 100 * time.Millisecond
	if cerr.failed() {
		grace = 0
	}
	bodyErr := up.finish(grace)
	switch {
	case cerr.write != nil:
		bc.close()
		c.finish(e, outcome{status: statusClientClosed})
		return false
	case cerr.read != nil:
		bc.close()
		c.finish(e, outcome{proxyErr: true})
		return false
	}
	if !bodyErr.failed() && res.keepAlive() {
		e.up.put(bc, s.now())
	} else {
		bc.close()
	}
	c.finish(e, outcome{status: res.status})
	// The client connection is kept only if its whole body was read.
	return !closeAfter && !bodyErr.failed()
}

// errBodyNotSent ends an upload that never started: the backend answered
// before it asked for the body.
var errBodyNotSent = errors.New("request body not sent")

// bodyUpload relays a streamed request body from the client to the backend
// in its own goroutine, once begun.
type bodyUpload struct {
	c       *clientConn
	bc      *backendConn
	start   chan bool
	done    chan copyErr
	started bool
	over    bool
	err     copyErr
}

func newBodyUpload(c *clientConn, bc *backendConn, chunk bool) *bodyUpload {
	u := &bodyUpload{c: c, bc: bc, start: make(chan bool, 1), done: make(chan copyErr, 1)}
	go func() {
		if !<-u.start {
			u.done <- copyErr{read: errBodyNotSent}
			return
		}
		bufp := copyBufs.Get().(*[]byte)
		cerr := relayBody(&c.bout, &c.reqBody, *bufp, chunk, false)
		copyBufs.Put(bufp)
		if cerr.read != nil {
			bc.close() // the client's body is broken or gone: abort the backend request
		}
		u.done <- cerr
	}()
	return u
}

// finishedWell reports, without waiting, an upload that is over and sent
// the whole body.
func (u *bodyUpload) finishedWell() bool {
	if !u.over && u.started {
		select {
		case u.err = <-u.done:
			u.over = true
		default:
		}
	}
	return u.over && !u.err.failed()
}

func (u *bodyUpload) begin() {
	if !u.started {
		u.start <- true
		u.started = true
	}
}

// finish ends the upload and returns how it went: a body still going after
// grace is cut off by closing the backend connection and interrupting the
// client read.
func (u *bodyUpload) finish(grace time.Duration) copyErr {
	if u.over {
		return u.err
	}
	if !u.started {
		u.start <- false
		u.started = true
	}
	u.over = true
	select {
	case u.err = <-u.done:
		return u.err
	default:
	}
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case u.err = <-u.done:
			return u.err
		case <-t.C:
		}
	}
	u.bc.close()
	u.c.conn.SetReadDeadline(aLongTimeAgo)
	u.err = <-u.done
	u.c.setReadDeadline(time.Time{})
	if u.err.read == nil && u.err.write == nil {
		u.err.write = errors.New("request body cut off")
	}
	return u.err
}

// clientFraming is how the body of c.res is sent to the client: a body
// without a length is chunked for an HTTP/1.1 client, which keeps its
// connection, and read to the end by an HTTP/1.0 one.
func (c *clientConn) clientFraming() bodyKind {
	switch {
	case c.res.body == bodyNone || c.res.body == bodyLength:
		return c.res.body
	case c.req.minor == 0:
		return bodyClose
	}
	return bodyChunked
}

// aLongTimeAgo is a deadline in the past: it makes a blocked read return.
var aLongTimeAgo = time.Unix(1, 0)

// tunnel relays a switched protocol (a WebSocket) both ways until either
// side closes. The request stays in flight meanwhile, so a drain waits for
// it; Shutdown does not.
func (c *clientConn) tunnel(e *entry, bc *backendConn) exchangeResult {
	c.disarmWatch()
	c.writeResponseHead(e, bodyNone, false)
	err := c.out.flush()
	if err == nil && bc.br.Buffered() > 0 {
		p, _ := bc.br.Peek(bc.br.Buffered())
		_, err = c.conn.Write(p)
	}
	if err == nil && c.br.Buffered() > 0 {
		p, _ := c.br.Peek(c.br.Buffered())
		_, err = bc.conn.Write(p)
	}
	if err == nil {
		c.setReadDeadline(time.Time{}) // a WebSocket may idle as long as it likes
		c.state.Store(stateUpgraded)
		done := make(chan struct{}, 2)
		go func() { io.Copy(bc.conn, c.conn); done <- struct{}{} }()
		go func() { io.Copy(c.conn, bc.conn); done <- struct{}{} }()
		<-done
	}
	bc.close()
	c.conn.Close()
	c.finish(e, outcome{status: http.StatusSwitchingProtocols})
	return exchangeResult{done: true}
}

// finish records the request's outcome on the backend that handled it last
// and ends its in-flight count; the latency runs from when the request's
// head was read.
func (c *clientConn) finish(e *entry, o outcome) {
	now := c.s.now()
	if !o.proxyErr {
		o.latency, o.hasLatency = now.Sub(c.start), true
	}
	e.stats.meter.record(now, o)
	e.version.meter.record(now, o)
	e.end()
}

// choose reads the version a request asks for: the version header forces
// one; the sticky cookie prefers the one the client got before.
func (c *clientConn) choose() choice {
	s := c.s
	c.cookie, c.hasCookie = "", false
	if h := s.versionHeader; h != "" {
		for i := range c.req.fields {
			if f := &c.req.fields[i]; len(f.value) > 0 && equalFold(f.name, h) {
				return choice{version: string(f.value), forced: true}
			}
		}
	}
	if name := s.opts.StickyCookie; name != "" {
		for i := range c.req.fields {
			if f := &c.req.fields[i]; f.kind == fieldCookie {
				if v, ok := cookieValue(f.value, name); ok {
					c.cookie, c.hasCookie = string(v), true
					if len(v) > 0 {
						return choice{version: c.cookie}
					}
				}
			}
		}
	}
	return choice{}
}

// cookieValue finds cookie name in a Cookie field ("a=1; b=2").
func cookieValue(v []byte, name string) ([]byte, bool) {
	for len(v) > 0 {
		var part []byte
		if i := bytes.IndexByte(v, ';'); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			part, v = v, nil
		}
		part = trimOWS(part)
		eq := bytes.IndexByte(part, '=')
		if eq < 0 || string(part[:eq]) != name {
			continue
		}
		val := part[eq+1:]
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		return val, true
	}
	return nil, false
}

// pick selects a backend of t for ch, skipping exclude and, while any other
// backend is usable, backends held out after a connection failure.
func (s *Server) pick(t *table, ch choice, exclude *entry) *entry {
	b := t.all
	if ch.version != "" {
		vb, ok := t.byVersion[ch.version]
		switch {
		case ok:
			b = vb
		case ch.forced:
			return nil
		}
	}
	now := s.now()
	if e := b.pick(func(e *entry) bool { return e != exclude && !e.up.heldOut(now) }); e != nil {
		return e
	}
	// Every backend is held out: trying one beats refusing the request.
	return b.pick(func(e *entry) bool { return e != exclude })
}

// armWatch starts the hang-up watcher's timer for a request waiting on bc.
// A connection with bytes already read ahead cannot be watched (the read
// would take them), and needs not be: its client has not hung up yet.
func (c *clientConn) armWatch(bc *backendConn) {
	if c.br.Buffered() > 0 || c.pending >= 0 {
		return
	}
	c.watched.Store(bc)
	c.watchState.Store(watchArmed)
	if c.watch == nil {
		c.watch = time.AfterFunc(watchDelay, c.watchClient)
	} else {
		c.watch.Reset(watchDelay)
	}
}

// watchClient runs once a request is slow: it reads the client connection,
// and a hang-up closes the backend connection, which cancels the request.
func (c *clientConn) watchClient() {
	if !c.watchState.CompareAndSwap(watchArmed, watchRunning) {
		return
	}
	var b [1]byte
	n, err := c.conn.Read(b[:])
	switch {
	case n == 1:
		c.pending = int(b[0])
	case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
		c.clientGone.Store(true)
		if bc := c.watched.Load(); bc != nil {
			bc.close()
		}
	}
	c.watchDone <- struct{}{}
}

// disarmWatch stops the watcher, waiting for a running one to give the
// connection back.
func (c *clientConn) disarmWatch() {
	switch c.watchState.Load() {
	case watchOff:
		return
	case watchArmed:
		if c.watchState.CompareAndSwap(watchArmed, watchOff) {
			c.watch.Stop()
			c.watched.Store(nil)
			return
		}
	}
	// Running: cut its read short and wait for it.
	c.conn.SetReadDeadline(aLongTimeAgo)
	<-c.watchDone
	c.setReadDeadline(time.Time{})
	c.watchState.Store(watchOff)
	c.watched.Store(nil)
}
