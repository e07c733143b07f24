package router

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo"
)

// closeCounting counts the connections its listener's server closed.
type closeCounting struct {
	net.Listener
	closed atomic.Int64
}

func (l *closeCounting) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *closeCounting
	once atomic.Bool
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	if c.once.CompareAndSwap(false, true) {
		c.l.closed.Add(1)
	}
	return err
}

// The demo app closes keep-alive connections idle longer than its idle
// timeout, sooner than the router drops them from its pool. A POST is not
// replayed once its body was sent, so the router must notice a pooled
// connection the backend closed before it writes a request on it.
func TestBackendClosingIdleConnectionsLosesNoPost(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &closeCounting{Listener: inner}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go demo.ServeListener(ctx, ln, demo.AppConfig{Version: "1.0", Hostname: "h", IdleTimeout: 30 * time.Millisecond, ShutdownGrace: time.Second})

	r := startRouter(t, Options{})
	r.apply(t, 1, engine.Backend{ID: "demo", Addr: inner.Addr().String(), Version: "1.0", Weight: 1})
	c := newTestClient(1)
	for i := range 20 {
		closed := ln.closed.Load()
		body := fmt.Sprintf("order #%d", i)
		res, err := c.Post(r.url+"/orders", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := fmt.Sprintf("read %d bytes", len(body)); res.StatusCode != http.StatusOK || !strings.Contains(string(got), want) {
			t.Fatalf("POST %d: %d %q, want 200 and %q", i, res.StatusCode, got, want)
		}
		// Let the backend close the router's idle connection before the
		// next POST goes out.
		eventually(t, "the backend to close its idle connection", func() bool { return ln.closed.Load() > closed })
	}
}
