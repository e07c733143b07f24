package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
)

// testBackend is a real HTTP backend on loopback. Every response carries
// X-Backend (its id) and X-Version. Paths:
//
//	/          body = id
//	/echo      body = request body (any method)
//	/slow?ms=N sleeps N ms, then like /echo
//	/hold      signals arrived, waits for release, then body = id
//	/stream    writes "first\n", flushes, waits for release, writes "last\n"
//	/headers   body = X-Forwarded-For|X-Forwarded-Proto|X-Forwarded-Host|Host
//	/ws        answers 101 and echoes bytes on the hijacked connection
type testBackend struct {
	id, version string
	addr        string
	srv         *http.Server
	arrived     chan struct{} // one value per request reaching /hold or /stream
	release     chan struct{} // closed to let /hold and /stream finish
	served      atomic.Int64
	conns       atomic.Int64 // connections accepted
	open        atomic.Int64 // connections open now
	releaseOnce sync.Once
}

func startBackend(t *testing.T, id, version string) *testBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen backend %s: %v", id, err)
	}
	b := &testBackend{id: id, version: version, addr: l.Addr().String(),
		arrived: make(chan struct{}, 64), release: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), IdleTimeout: time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				b.conns.Add(1)
				b.open.Add(1)
			case http.StateClosed, http.StateHijacked:
				b.open.Add(-1)
			}
		}}
	go b.srv.Serve(l)
	t.Cleanup(b.kill)
	return b
}

// kill closes the listener and every connection at once, like a container
// being stopped.
func (b *testBackend) kill() {
	b.unblock()
	b.srv.Close()
}

func (b *testBackend) unblock() { b.releaseOnce.Do(func() { close(b.release) }) }

func (b *testBackend) backend(weight int) engine.Backend {
	return engine.Backend{ID: b.id, Addr: b.addr, Version: b.version, Weight: weight}
}

func (b *testBackend) serve(w http.ResponseWriter, r *http.Request) {
	b.served.Add(1)
	w.Header().Set("X-Backend", b.id)
	w.Header().Set("X-Version", b.version)
	switch r.URL.Path {
	case "/echo":
		echo(w, r)
	case "/slow":
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		echo(w, r)
	case "/hold":
		b.arrived <- struct{}{}
		<-b.release
		io.WriteString(w, b.id)
	case "/stream":
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		b.arrived <- struct{}{}
		<-b.release
		io.WriteString(w, "last\n")
	case "/die":
		// Takes the whole request, then dies before answering.
		io.Copy(io.Discard, r.Body)
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	case "/headers":
		fmt.Fprintf(w, "%s|%s|%s|%s", r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"),
			r.Header.Get("X-Forwarded-Host"), r.Host)
	case "/ws":
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want upgrade", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		buf := make([]byte, 1024)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				conn.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	default:
		io.WriteString(w, b.id)
	}
}

// echo answers with the request's body. It reads the body whole first:
// Go's HTTP/1 server stops reading a request body once the answer has
// begun, so copying straight through would cut bodies over 512 bytes.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Write(body)
}

// testRouter is a Server serving on loopback, with a Client on its unix
// admin socket.
type testRouter struct {
	srv    *Server
	url    string // http://127.0.0.1:port
	client *Client
	admin  string
}

func startRouter(t *testing.T, opts Options) *testRouter {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("new router: %v", err)
	}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Socket paths are limited to ~108 bytes; t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatal(err)
	}
	admin := "unix:" + filepath.Join(dir, "admin.sock")
	al, err := ListenAdmin(admin, false)
	if err != nil {
		t.Fatal(err)
	}
	go s.ServeProxy(pl)
	go s.ServeAdmin(al)
	c, err := Dial(admin, opts.Token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		c.Close()
		os.RemoveAll(dir)
	})
	return &testRouter{srv: s, url: "http://" + pl.Addr().String(), client: c, admin: admin}
}

func (r *testRouter) apply(t *testing.T, epoch uint64, backends ...engine.Backend) {
	t.Helper()
	if backends == nil {
		backends = []engine.Backend{}
	}
	if err := r.client.Apply(context.Background(), engine.RouteTable{Epoch: epoch, Backends: backends}); err != nil {
		t.Fatalf("apply epoch %d: %v", epoch, err)
	}
}

// newTestClient is an HTTP client with its own pool, like a real user of the
// service.
func newTestClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute},
		Timeout:   30 * time.Second,
	}
}

// get fetches url and returns status, X-Backend and body.
func get(t *testing.T, c *http.Client, url string, header ...string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return res.StatusCode, res.Header.Get("X-Backend"), string(body)
}

// startLoad runs the shared test load (demotest.Load) against a router of
// test backends: POSTs to /echo whose bodies must come back intact, GETs,
// and slow (300 ms) requests, counted by X-Backend. Every non-2xx answer,
// transport error and wrong body is a failure.
func startLoad(t *testing.T, url string) *demotest.Load {
	t.Helper()
	return demotest.StartLoad(t, demotest.LoadSpec{Rate: 300, Get: url + "/", Post: url + "/echo", Slow: url + "/slow?ms=300",
		CountBy: "X-Backend",
		CheckPost: func(sent string, answer []byte) error {
			if string(answer) != sent {
				return fmt.Errorf("body %.40q…, want %.40q…", answer, sent)
			}
			return nil
		}})
}

// rawUpgrade sends a WebSocket upgrade on a raw connection and returns the
// connection and the response.
func rawUpgrade(t *testing.T, addr, path string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, addr)
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read upgrade response: %v", err)
	}
	return conn, br, res
}

// eventually polls cond (an observable state of a real server) until it
// holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func statsOf(t *testing.T, r *testRouter) engine.Stats {
	t.Helper()
	st, err := r.client.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func backendStatsOf(st engine.Stats, id string) (engine.BackendStats, bool) {
	for _, b := range st.Backends {
		if b.ID == id {
			return b, true
		}
	}
	return engine.BackendStats{}, false
}
