package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/docker"
)

// holdProxy stands between the binary and an HTTP API on a unix socket
// (the Docker engine's, the router's admin API) on a socket of its own.
// It forwards every call, and holds the calls a test chose, so the test
// can act — kill the process, take the service over — while the process
// is inside that call: a moment no event marks and no timing could hit.
type holdProxy struct {
	sock string // where the binary connects
	rp   *httputil.ReverseProxy

	mu    sync.Mutex
	holds []*heldCall
}

// heldCall is one call a holdProxy holds.
type heldCall struct {
	match   func(r *http.Request, body []byte) bool
	nth     int  // the nth matching call from now (1-based) is held
	forward bool // the API carries the call out and its answer is held; otherwise the call itself waits
	seen    int

	arrived chan struct{} // closed when the call is held
	release chan struct{} // closed to let it go
	once    sync.Once
	path    string // the URL path of the held call
}

// newHoldProxy starts a proxy to the API listening on the unix socket
// target; it stops when the test ends, letting every held call go.
func newHoldProxy(t testing.TB, target string) *holdProxy {
	t.Helper()
	// Socket paths are limited to ~108 bytes; t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "hp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	p := &holdProxy{sock: l.Addr().String()}
	var dialer net.Dialer
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "api"})
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, "unix", target)
			},
		},
		FlushInterval: -1, // Docker's logs and pulls stream
		// A caller killed mid-call is what these tests do: no log for it.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	srv := &http.Server{Handler: p}
	go srv.Serve(l)
	t.Cleanup(func() {
		p.mu.Lock()
		for _, h := range p.holds {
			h.let()
		}
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return p
}

// newDockerProxy is a holdProxy to the Docker engine of p, which must
// listen on a unix socket (as the local engine does).
func newDockerProxy(t testing.TB, p *docker.Platform) *holdProxy {
	t.Helper()
	daemon := p.Client().DaemonHost()
	sock, ok := strings.CutPrefix(daemon, "unix://")
	if !ok {
		demotest.Missing(t, "a Docker engine on a unix socket for the test's Docker proxy (DOCKER_HOST is %s)", daemon)
	}
	return newHoldProxy(t, sock)
}

var dockerAction = regexp.MustCompile(`^(?:/v[0-9.]+)?/containers/([^/]+)/([a-z]+)$`)

// dockerCall matches the Docker API's POST /containers/{id}/action.
func dockerCall(action string) func(*http.Request, []byte) bool {
	return func(r *http.Request, _ []byte) bool {
		m := dockerAction.FindStringSubmatch(r.URL.Path)
		return r.Method == http.MethodPost && m != nil && m[2] == action
	}
}

// hold arms a hold of the nth call from now that match accepts. With
// forward, the API carries the call out and only its answer waits (the
// caller cannot know it happened); without, the call waits before the API
// sees it, and is dropped if the caller goes away meanwhile.
func (p *holdProxy) hold(match func(r *http.Request, body []byte) bool, nth int, forward bool) *heldCall {
	h := &heldCall{match: match, nth: nth, forward: forward, arrived: make(chan struct{}), release: make(chan struct{})}
	p.mu.Lock()
	p.holds = append(p.holds, h)
	p.mu.Unlock()
	return h
}

// let releases the held call (or disarms a hold not reached).
func (h *heldCall) let() { h.once.Do(func() { close(h.release) }) }

// container is the ID of the container a held Docker call concerns.
func (h *heldCall) container() string {
	if m := dockerAction.FindStringSubmatch(h.path); m != nil {
		return m[1]
	}
	return ""
}

// match counts r against the armed holds and returns the one that holds it.
func (p *holdProxy) match(r *http.Request) *heldCall {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, h := range p.holds {
		select {
		case <-h.release:
			continue // let go, or disarmed
		default:
		}
		if h.seen >= h.nth || !h.match(r, body) {
			continue
		}
		h.seen++
		if h.seen == h.nth {
			h.path = r.URL.Path
			return h
		}
	}
	return nil
}

func (p *holdProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := p.match(r)
	if h == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	caller := r.Context()
	if !h.forward {
		close(h.arrived)
		select {
		case <-h.release:
		case <-caller.Done():
			return // the caller died: the API never hears of the call
		}
		p.rp.ServeHTTP(w, r)
		return
	}
	// The API must finish the call even if the caller dies meanwhile, as it
	// would had the caller died after sending it.
	rec := &heldAnswer{header: http.Header{}}
	p.rp.ServeHTTP(rec, r.WithContext(context.WithoutCancel(caller)))
	close(h.arrived)
	select {
	case <-h.release:
	case <-caller.Done():
		return
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body)
}

// heldAnswer keeps a short answer until the test lets it go.
type heldAnswer struct {
	header http.Header
	status int
	body   []byte
}

func (a *heldAnswer) Header() http.Header { return a.header }

func (a *heldAnswer) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

func (a *heldAnswer) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	a.body = append(a.body, b...)
	return len(b), nil
}

// waitHeld waits until h holds a call, failing the test if p ends first
// or nothing arrives within the time.
func waitHeld(t testing.TB, h *heldCall, p *proc, within time.Duration) {
	t.Helper()
	select {
	case <-h.arrived:
	case <-p.done:
		t.Fatalf("%v ended (exit %d) before the call to hold came", p.args, p.wait(time.Second))
	case <-time.After(within):
		t.Fatalf("no call to hold came within %v", within)
	}
}
