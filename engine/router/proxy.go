package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// noBackendBody is what clients get when no backend can take their request.
const noBackendBody = "cutover router: no backend for this service\n"

// attempt is the routing state of one proxied request. The proxy's transport
// may move it to another backend once (a retry); the handler then records the
// outcome on the backend that answered.
type attempt struct {
	entry      *entry
	choice     choice
	body       []byte      // the whole request body when it could be buffered
	replayable bool        // body is fully in memory (or absent): safe to send again
	bodyRead   atomic.Bool // the transport has read some of the body: the request may have reached the backend
	retried    bool
	status     int   // status the backend answered, 0 until known
	proxyErr   error // why no response came from the backend
}

type attemptKey struct{}

func attemptFrom(ctx context.Context) *attempt {
	at, _ := ctx.Value(attemptKey{}).(*attempt)
	return at
}

// choice says how a request selects its backend.
type choice struct {
	version string // "" means any version
	forced  bool   // version came from the version header: never fall back
}

// proxy is the public handler: it picks a backend from the current table and
// forwards the request through httputil.ReverseProxy.
type proxy struct {
	s       *Server
	reverse *httputil.ReverseProxy
}

func newProxy(s *Server) *proxy {
	p := &proxy{s: s}
	p.reverse = &httputil.ReverseProxy{
		Rewrite:   p.rewrite,
		Transport: &retryTransport{p: p},
		// FlushInterval stays 0: ReverseProxy already flushes every write of
		// a response without Content-Length (chunked) or of an event stream,
		// and -1 would cost every response an extra write and a timer.
		BufferPool:     newBufferPool(),
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slogAdapter(s.log),
	}
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := p.s.now()
	ch, err := p.choose(r)
	if err != nil {
		http.Error(w, "cutover router: "+err.Error(), http.StatusBadRequest)
		return
	}
	at := &attempt{choice: ch}
	if err := at.bufferBody(r, p.s.opts.MaxReplayBody); err != nil {
		http.Error(w, "cutover router: reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	at.entry = p.s.acquire(func(t *table) *entry { return p.pick(t, ch, nil) })
	if at.entry == nil {
		p.s.noBackend.Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		if ch.forced {
			io.WriteString(w, "cutover router: no backend for version "+ch.version+"\n")
			return
		}
		io.WriteString(w, noBackendBody)
		return
	}
	defer func() {
		rec := recover()
		p.finish(r, at, start, rec)
		if rec != nil {
			panic(rec)
		}
	}()
	p.reverse.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), attemptKey{}, at)))
}

// choose reads the version a request asks for: the version header forces
// one; the sticky cookie prefers the one the client got before.
func (p *proxy) choose(r *http.Request) (choice, error) {
	if h := p.s.opts.VersionHeader; h != "" {
		if v := r.Header.Get(h); v != "" {
			return choice{version: v, forced: true}, nil
		}
	}
	if name := p.s.opts.StickyCookie; name != "" {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return choice{version: c.Value}, nil
		}
	}
	return choice{}, nil
}

// pick selects a backend of t for ch, skipping exclude and, while any other
// backend is usable, backends held out after a connection failure.
func (p *proxy) pick(t *table, ch choice, exclude *entry) *entry {
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
	now := p.s.now()
	if e := b.pick(func(e *entry) bool { return e != exclude && !e.up.heldOut(now) }); e != nil {
		return e
	}
	// Every backend is held out: trying one beats refusing the request.
	return b.pick(func(e *entry) bool { return e != exclude })
}

// bufferBody reads up to limit bytes of the request body so the request can
// be replayed on another backend. Larger bodies are streamed and not retried.
func (at *attempt) bufferBody(r *http.Request, limit int64) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		at.replayable = true
		return nil
	}
	if r.ContentLength > limit {
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(buf)) > limit {
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil
	}
	at.body, at.replayable = buf, true
	r.Body = at.bodyReader()
	r.ContentLength = int64(len(buf))
	r.TransferEncoding = nil
	return nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

func (p *proxy) rewrite(pr *httputil.ProxyRequest) {
	at := attemptFrom(pr.In.Context())
	pr.SetXForwarded()
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = at.entry.backend.Addr
	// Out.Host keeps the client's Host header, as the backend expects.
}

func (p *proxy) modifyResponse(res *http.Response) error {
	at := attemptFrom(res.Request.Context())
	at.status = res.StatusCode
	if name := p.s.opts.StickyCookie; name != "" {
		v := at.entry.backend.Version
		if c, err := res.Request.Cookie(name); err != nil || c.Value != v {
			res.Header.Add("Set-Cookie", (&http.Cookie{Name: name, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}).String())
		}
	}
	return nil
}

func (p *proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	at := attemptFrom(r.Context())
	if r.Context().Err() != nil {
		at.status = statusClientClosed
		return
	}
	at.proxyErr = err
	p.s.log.Debug("backend failed", "backend", at.entry.backend.ID, "addr", at.entry.backend.Addr, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		// Nothing reached a backend (and the retry, if any, failed too): for
		// the client there is no backend, which is a 503, not a bad gateway.
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, noBackendBody)
		return
	}
	w.WriteHeader(http.StatusBadGateway)
	io.WriteString(w, "cutover router: backend "+at.entry.backend.ID+" did not answer\n")
}

// statusClientClosed is nginx's code for a client that went away before the
// response; it is counted as 4xx, not as a backend failure.
const statusClientClosed = 499

// finish records the request's outcome on the backend that handled it last.
// rec is a panic from ReverseProxy: http.ErrAbortHandler means the response
// was cut after its headers were sent.
func (p *proxy) finish(r *http.Request, at *attempt, start time.Time, rec any) {
	now := p.s.now()
	o := outcome{status: at.status}
	switch {
	case at.proxyErr != nil:
		o.proxyErr = true
	case rec != nil && r.Context().Err() == nil:
		// The backend broke off its response (headers already sent).
		o.proxyErr = true
	default:
		o.latency, o.hasLatency = now.Sub(start), true
	}
	at.entry.stats.meter.record(now, o)
	at.entry.version.meter.record(now, o)
	at.entry.end()
}

// retryTransport sends an attempt to its backend's transport and replays it
// once on another backend when the connection failed before any response.
type retryTransport struct {
	p *proxy
}

func (rt *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	at := attemptFrom(req.Context())
	s := rt.p.s
	for {
		e := at.entry
		res, err := e.up.transport.RoundTrip(req)
		if err == nil || !connectionFailed(err) || req.Context().Err() != nil {
			return res, err
		}
		if !strings.Contains(err.Error(), "server closed idle connection") {
			// A keep-alive race says nothing about the backend's health.
			now := s.now()
			if e.up.holdOut(now, now.Add(s.opts.HoldOut)) {
				s.log.Warn("backend held out after a connection failure", "backend", e.backend.ID, "addr", e.backend.Addr, "for", s.opts.HoldOut, "err", err)
			}
		}
		if at.retried || !at.replayable || !mayReplay(err, req, at) {
			return nil, err
		}
		next := s.acquire(func(t *table) *entry { return rt.p.pick(t, at.choice, e) })
		if next == nil && at.choice.version != "" && !at.choice.forced {
			next = s.acquire(func(t *table) *entry { return rt.p.pick(t, choice{}, e) })
		}
		if next == nil {
			return nil, err
		}
		s.log.Debug("retrying on another backend", "failed", e.backend.ID, "retry", next.backend.ID, "err", err)
		now := s.now()
		failed := outcome{proxyErr: true, retried: true}
		e.stats.meter.record(now, failed)
		e.version.meter.record(now, failed)
		e.end()
		at.entry, at.retried = next, true

		req = req.Clone(req.Context())
		req.URL.Host = next.backend.Addr
		if at.body != nil {
			at.bodyRead.Store(false)
			req.Body = at.bodyReader()
		}
	}
}

// bodyReader serves the buffered body and notes when the transport starts
// sending it.
func (at *attempt) bodyReader() io.ReadCloser {
	return io.NopCloser(&sentReader{r: bytes.NewReader(at.body), read: &at.bodyRead})
}

// sentReader is a body that records being read.
type sentReader struct {
	r    io.Reader
	read *atomic.Bool
}

func (s *sentReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.read.Store(true)
	}
	return n, err
}

// mayReplay says whether a request whose connection failed can be sent to
// another backend without risk of doing it twice: the connection was never
// made, the method is idempotent (or the client sent an Idempotency-Key),
// or not one byte of its body was sent (the backend cannot have acted on
// a request it did not receive). A POST reset after it was written is not
// replayed: the backend may have processed it before dying.
func mayReplay(err error, req *http.Request, at *attempt) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	if req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != "" {
		return true
	}
	return at.body != nil && !at.bodyRead.Load()
}

// connectionFailed reports whether err means the backend refused or dropped
// the connection before sending any response byte, so nothing was answered.
func connectionFailed(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	// net/http reports a keep-alive connection the backend closed as an
	// unexported error with this text.
	return strings.Contains(err.Error(), "server closed idle connection")
}

// bufferPool lends ReverseProxy 32 KiB copy buffers.
type bufferPool struct {
	pool sync.Pool
}

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any {
		b := make([]byte, 32<<10)
		return &b
	}}}
}

func (bp *bufferPool) Get() []byte { return *(bp.pool.Get().(*[]byte)) }

func (bp *bufferPool) Put(b []byte) {
	b = b[:cap(b)]
	bp.pool.Put(&b)
}
