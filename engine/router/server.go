// Package router is cutover's traffic data plane: a small reverse proxy that
// routes a service's requests to its backends by smooth weighted round robin,
// swaps its whole route table atomically under an epoch fence, counts what it
// sees, and is driven through a JSON admin API (see Client).
package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cutover/cutover/engine"
)

// Default option values.
const (
	DefaultHoldOut       = 2 * time.Second
	DefaultMaxReplayBody = 64 << 10
	DefaultDialTimeout   = 5 * time.Second
)

// Options configure a Server. The zero value routes without persistence,
// without admin authentication and without canary stickiness.
type Options struct {
	// StatePath is the file the table is saved to on every change and loaded
	// from at start. Empty keeps the table in memory only.
	StatePath string
	// Token, when set, is required as "Authorization: Bearer TOKEN" on every
	// admin request.
	Token string
	// HoldOut is how long a backend that refused or reset a connection is
	// skipped by new picks (default 2s).
	HoldOut time.Duration
	// StickyCookie names a cookie that keeps a client on the version it first
	// got; empty disables it.
	StickyCookie string
	// VersionHeader names a request header that forces a version (for example
	// X-Cutover-Version); empty disables it.
	VersionHeader string
	// MaxReplayBody is the largest request body buffered so the request can
	// be retried on another backend (default 64 KiB).
	MaxReplayBody int64
	// DialTimeout bounds connecting to a backend (default 5s).
	DialTimeout time.Duration
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Server is a router: the public proxy handler, the admin API and the route
// table they share. Requests read the table through an atomic pointer; only
// table changes and stats snapshots take the server's mutex.
type Server struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	table     atomic.Pointer[table]
	noBackend atomic.Int64

	mu        sync.Mutex // serializes Apply; guards the maps below
	backends  map[string]*backendState
	versions  map[string]*versionState
	upstreams map[string]*upstream

	versionHeader string // opts.VersionHeader in lower case

	connMu       sync.Mutex // guards the proxy's listeners and connections
	listeners    map[net.Listener]struct{}
	conns        map[*clientConn]struct{}
	shuttingDown atomic.Bool
	reaping      sync.Once
	stopReaper   chan struct{}

	adminSrv *http.Server
}

// New makes a router and loads its table from opts.StatePath when the file
// exists. A state file that cannot be read is an error: serving an empty table
// by mistake would drop all traffic.
func New(opts Options) (*Server, error) {
	if opts.HoldOut <= 0 {
		opts.HoldOut = DefaultHoldOut
	}
	if opts.MaxReplayBody <= 0 {
		opts.MaxReplayBody = DefaultMaxReplayBody
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		now:       opts.Now,
		backends:  make(map[string]*backendState),
		versions:  make(map[string]*versionState),
		upstreams: make(map[string]*upstream),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*clientConn]struct{}),

		versionHeader: strings.ToLower(opts.VersionHeader),
		stopReaper:    make(chan struct{}),
	}
	s.started = s.now()
	rt := engine.RouteTable{Backends: []engine.Backend{}}
	if opts.StatePath != "" {
		loaded, ok, err := loadState(opts.StatePath)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := validateTable(loaded); err != nil {
				return nil, fmt.Errorf("load router state %s: %w", opts.StatePath, err)
			}
			rt = loaded
		}
	}
	s.install(cloneTable(rt))
	s.adminSrv = &http.Server{
		Handler:           s.AdminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slogAdapter(s.log),
	}
	return s, nil
}

// ServeProxy serves routed traffic on l until Shutdown. It returns nil after
// Shutdown and the accept error otherwise.
func (s *Server) ServeProxy(l net.Listener) error {
	s.connMu.Lock()
	if s.shuttingDown.Load() {
		s.connMu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = struct{}{}
	s.connMu.Unlock()
	s.reaping.Do(func() { go s.reapIdle() })
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.shuttingDown.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ECONNABORTED) {
				// Out of file descriptors or a connection reset while
				// queued: wait a little, as net/http does, and go on.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("serve proxy on %s: %w", l.Addr(), err)
		}
		backoff = 0
		c := newClientConn(s, conn)
		if !s.track(c) {
			conn.Close()
			continue
		}
		go c.serve()
	}
}

// track registers a new client connection; false once shutting down.
func (s *Server) track(c *clientConn) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.shuttingDown.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *clientConn) {
	s.connMu.Lock()
	delete(s.conns, c)
	s.connMu.Unlock()
}

// reapIdle closes, every few seconds, pooled backend connections that
// timed out or that their backend closed.
func (s *Server) reapIdle() {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stopReaper:
			return
		case <-t.C:
		}
		s.mu.Lock()
		ups := make([]*upstream, 0, len(s.upstreams))
		for _, u := range s.upstreams {
			ups = append(ups, u)
		}
		s.mu.Unlock()
		now := s.now()
		for _, u := range ups {
			u.reap(now)
		}
	}
}

// ServeAdmin serves the admin API on l until Shutdown.
func (s *Server) ServeAdmin(l net.Listener) error {
	if err := s.adminSrv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin on %s: %w", l.Addr(), err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for requests in flight to
// finish, or for ctx to end (then the error says how many were cut).
// Upgraded connections (WebSockets) are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	var wg sync.WaitGroup
	var adminErr error
	wg.Go(func() { adminErr = s.adminSrv.Shutdown(ctx) })
	err := s.shutdownProxy(ctx)
	wg.Wait()
	if err != nil {
		s.closeConns()
		return fmt.Errorf("shutdown router: %d requests still in flight: %w", s.inFlight(), err)
	}
	if adminErr != nil {
		s.adminSrv.Close()
		return fmt.Errorf("shutdown router admin: %w", adminErr)
	}
	return nil
}

// shutdownProxy closes the listeners, then closes client connections as
// they become idle until none but upgraded ones are left.
func (s *Server) shutdownProxy(ctx context.Context) error {
	s.connMu.Lock()
	if !s.shuttingDown.Swap(true) {
		close(s.stopReaper)
	}
	for l := range s.listeners {
		l.Close()
		delete(s.listeners, l)
	}
	s.connMu.Unlock()
	wait := time.Millisecond
	for {
		if s.closeIdleConns() {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// closeIdleConns closes the client connections waiting for a request and
// reports whether no connection is left to wait for.
func (s *Server) closeIdleConns() bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	done := true
	for c := range s.conns {
		switch {
		case c.state.CompareAndSwap(stateIdle, stateClosed):
			c.conn.Close()
		case c.state.Load() == stateActive:
			done = false
		}
	}
	return done
}

// closeConns cuts every client connection, when Shutdown's time is up.
func (s *Server) closeConns() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.conns {
		c.conn.Close()
	}
}

func (s *Server) inFlight() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, v := range s.versions {
		n += v.inflight.Load()
	}
	return n
}

// Table returns the applied table.
func (s *Server) Table() engine.RouteTable { return cloneTable(s.table.Load().spec) }

// Apply validates rt, refuses it with engine.ErrStaleEpoch when its epoch is
// older than the applied one, saves it to the state file and then swaps it in
// at once. On any error nothing changes.
func (s *Server) Apply(ctx context.Context, rt engine.RouteTable) error {
	if err := validateTable(rt); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	cur := s.table.Load().spec
	if rt.Epoch < cur.Epoch {
		return fmt.Errorf("table epoch %d is older than the router's epoch %d: %w", rt.Epoch, cur.Epoch, engine.ErrStaleEpoch)
	}
	if rt.Epoch == cur.Epoch && rt.Writer != cur.Writer {
		// Two writers read the same epoch and claimed the next: the first
		// to apply owns it, the other is fenced out.
		return fmt.Errorf("table epoch %d belongs to writer %q, not %q: %w", rt.Epoch, cur.Writer, rt.Writer, engine.ErrStaleEpoch)
	}
	rt = cloneTable(rt)
	if s.opts.StatePath != "" {
		if err := saveState(s.opts.StatePath, rt); err != nil {
			return err
		}
	}
	s.install(rt)
	s.log.Info("route table applied", "epoch", rt.Epoch, "backends", len(rt.Backends))
	return nil
}

// install builds and publishes the table for rt. Callers hold s.mu (or own s
// exclusively, as New does).
func (s *Server) install(rt engine.RouteTable) {
	entries := make([]*entry, len(rt.Backends))
	used := make(map[string]bool, len(rt.Backends))
	for i, b := range rt.Backends {
		bs := s.backends[b.ID]
		if bs == nil {
			bs = &backendState{id: b.ID}
			s.backends[b.ID] = bs
		}
		bs.last = b
		vs := s.versions[b.Version]
		if vs == nil {
			vs = &versionState{version: b.Version}
			s.versions[b.Version] = vs
		}
		up := s.upstreams[b.Addr]
		if up == nil {
			up = newUpstream(b.Addr, s.opts.DialTimeout)
			s.upstreams[b.Addr] = up
		}
		used[b.Addr] = true
		entries[i] = &entry{backend: b, stats: bs, version: vs, up: up}
	}
	s.table.Store(newTable(rt, entries))
	for addr, up := range s.upstreams {
		if !used[addr] {
			delete(s.upstreams, addr)
			up.retire()
		}
	}
	s.pruneLocked()
}

// pruneLocked forgets backends that left the table and have nothing in
// flight; until then they stay in stats so their drain can be watched.
func (s *Server) pruneLocked() {
	t := s.table.Load()
	inTable := make(map[string]bool, len(t.entries))
	for _, e := range t.entries {
		inTable[e.backend.ID] = true
	}
	for id, bs := range s.backends {
		if !inTable[id] && bs.inflight.Load() == 0 {
			delete(s.backends, id)
		}
	}
}

// acquire picks a backend with pick and counts it in flight. If the table was
// swapped between the pick and the count, it picks again from the new table:
// so once Apply has returned, a backend the new table dropped gains no
// request, and an in-flight count of 0 really means drained.
func (s *Server) acquire(pick func(*table) *entry) *entry {
	for {
		t := s.table.Load()
		e := pick(t)
		if e == nil {
			return nil
		}
		e.begin()
		if s.table.Load() == t {
			return e
		}
		e.end()
	}
}

// Stats returns the router's figures now.
func (s *Server) Stats() engine.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked()
}

// State returns the applied table and the stats read at the same moment.
func (s *Server) State() (engine.RouteTable, engine.Stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneTable(s.table.Load().spec), s.statsLocked()
}

func (s *Server) statsLocked() engine.Stats {
	s.pruneLocked()
	now := s.now()
	uptime := now.Sub(s.started)
	t := s.table.Load()
	st := engine.Stats{
		Epoch:     t.spec.Epoch,
		At:        now,
		Started:   s.started,
		Backends:  []engine.BackendStats{},
		Versions:  []engine.VersionStats{},
		NoBackend: s.noBackend.Load(),
	}
	inTable := make(map[string]bool, len(t.entries))
	for _, e := range t.entries {
		inTable[e.backend.ID] = true
		st.Backends = append(st.Backends, backendStats(e.stats, e.backend, e.up.heldOut(now), now, uptime))
	}
	var gone []*backendState
	for id, bs := range s.backends {
		if !inTable[id] {
			gone = append(gone, bs)
		}
	}
	sort.Slice(gone, func(i, j int) bool { return gone[i].id < gone[j].id })
	for _, bs := range gone {
		b := bs.last
		b.Weight = 0 // no longer in the table: it gets no traffic
		st.Backends = append(st.Backends, backendStats(bs, b, false, now, uptime))
	}
	versions := make([]*versionState, 0, len(s.versions))
	for _, vs := range s.versions {
		versions = append(versions, vs)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i].version < versions[j].version })
	for _, vs := range versions {
		totals, ws := vs.meter.report(now, uptime)
		st.Versions = append(st.Versions, engine.VersionStats{
			Version:  vs.version,
			InFlight: vs.inflight.Load(),
			Totals:   totals,
			Windows:  ws,
		})
	}
	return st
}

func backendStats(bs *backendState, b engine.Backend, heldOut bool, now time.Time, uptime time.Duration) engine.BackendStats {
	totals, ws := bs.meter.report(now, uptime)
	return engine.BackendStats{
		ID:       b.ID,
		Version:  b.Version,
		Weight:   b.Weight,
		InFlight: bs.inflight.Load(),
		HeldOut:  heldOut,
		Totals:   totals,
		Windows:  ws,
	}
}

// slogAdapter lets net/http's admin server log through slog.
func slogAdapter(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}
