package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

// scriptedBackend is a backend that talks raw HTTP/1.1, so a test can
// answer what net/http would not (a bad or unusual response) and see
// exactly what the router sent.
type scriptedBackend struct {
	addr  string
	conns atomic.Int64
	heads chan string // every request head received, in order
}

// startScripted serves every connection with serve until the test ends.
func startScripted(t *testing.T, serve func(conn net.Conn, br *bufio.Reader, b *scriptedBackend)) *scriptedBackend {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptedBackend{addr: l.Addr().String(), heads: make(chan string, 100)}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			go func() {
				defer conn.Close()
				serve(conn, bufio.NewReader(conn), b)
			}()
		}
	}()
	return b
}

// readRequestHead reads one request head as text, recording it.
func (b *scriptedBackend) readRequestHead(br *bufio.Reader) (string, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return head.String(), err
		}
		head.WriteString(line)
		if line == "\r\n" {
			b.heads <- head.String()
			return head.String(), nil
		}
	}
}

// rawRouter starts a router routing to addr and returns its address.
func rawRouter(t *testing.T, opts Options, addrs ...string) (*testRouter, string) {
	t.Helper()
	r := startRouter(t, opts)
	var bs []engine.Backend
	for i, a := range addrs {
		bs = append(bs, engine.Backend{ID: fmt.Sprintf("b%d", i), Addr: a, Version: "1", Weight: 1})
	}
	r.apply(t, 1, bs...)
	return r, strings.TrimPrefix(r.url, "http://")
}

// rawExchange sends raw bytes on a new connection and returns it and a
// reader on it.
func rawExchange(t *testing.T, addr, send string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, send); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return res, string(body)
}

func TestHopByHopFieldsAreDroppedBothWays(t *testing.T) {
	be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
		for {
			if _, err := b.readRequestHead(br); err != nil {
				return
			}
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\nKeep-Alive: timeout=5\r\n"+
				"Proxy-Authenticate: Basic\r\nX-End-To-End: kept\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	_, addr := rawRouter(t, Options{}, be.addr)
	_, br := rawExchange(t, addr, "GET /x HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n"+
		"Keep-Alive: 300\r\nProxy-Authorization: Basic abc\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nX-Keep: yes\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	head := <-be.heads
	for _, gone := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "TE:", "Connection"} {
		if strings.Contains(head, gone) {
			t.Errorf("backend got hop-by-hop %q:\n%s", gone, head)
		}
	}
	if !strings.Contains(head, "X-Keep: yes\r\n") || !strings.HasPrefix(head, "GET /x HTTP/1.1\r\n") {
		t.Errorf("backend head lost end-to-end fields:\n%s", head)
	}
	if body != "ok" || res.Header.Get("X-End-To-End") != "kept" {
		t.Fatalf("answer %q, header %v", body, res.Header)
	}
	for _, gone := range []string{"X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if res.Header.Get(gone) != "" {
			t.Errorf("client got hop-by-hop %s: %v", gone, res.Header)
		}
	}
}

func TestConnectionCloseClosesTheClientButKeepsTheBackendConnection(t *testing.T) {
	b := startBackend(t, "a", "1")
	_, addr := rawRouter(t, Options{}, b.addr)
	for i := range 3 {
		conn, br := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: svc\r\nConnection: close\r\n\r\n")
		res, body := readResponse(t, br, "GET")
		if body != "a" || !res.Close {
			t.Fatalf("request %d: %q, close=%v; want a and Connection: close", i, body, res.Close)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("request %d: the router kept the connection: %v", i, err)
		}
		conn.Close()
	}
	if n := b.conns.Load(); n != 1 {
		t.Fatalf("%d backend connections for 3 requests, want the pooled one reused", n)
	}
}

func TestHTTP10ClientsGetKeepAliveOnlyWhenAsked(t *testing.T) {
	b := startBackend(t, "a", "1")
	_, addr := rawRouter(t, Options{}, b.addr)
	_, br := rawExchange(t, addr, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /stream HTTP/1.0\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if body != "a" || res.Close || res.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("1.0 keep-alive: %q close=%v %v", body, res.Close, res.Header)
	}
	// The streamed answer has no length: an HTTP/1.0 client reads it to
	// the end of the connection, unchunked.
	go func() { <-b.arrived; b.unblock() }()
	res, body = readResponse(t, br, "GET")
	if body != "first\nlast\n" || len(res.TransferEncoding) != 0 || !res.Close {
		t.Fatalf("1.0 stream: %q te=%v close=%v", body, res.TransferEncoding, res.Close)
	}
}

func TestPipelinedRequestsAreAnsweredInOrder(t *testing.T) {
	b := startBackend(t, "a", "1")
	_, addr := rawRouter(t, Options{}, b.addr)
	_, br := rawExchange(t, addr, "POST /echo HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nfirstGET / HTTP/1.1\r\nHost: svc\r\n\r\n"+
		"POST /echo HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nthi\r\n2\r\nrd\r\n0\r\n\r\n")
	for _, want := range []string{"first", "a", "third"} {
		if _, body := readResponse(t, br, "GET"); body != want {
			t.Fatalf("pipelined answer %q, want %q", body, want)
		}
	}
}

func TestHeadAndNoContentAnswersHaveNoBody(t *testing.T) {
	be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
		for {
			head, err := b.readRequestHead(br)
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(head, "HEAD"):
				// Content-Length of the body a GET would get, and none sent.
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
			case strings.Contains(head, "/204"):
				io.WriteString(conn, "HTTP/1.1 204 No Content\r\n\r\n")
			case strings.Contains(head, "/304"):
				io.WriteString(conn, "HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\nETag: \"x\"\r\n\r\n")
			default:
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
			}
		}
	})
	_, addr := rawRouter(t, Options{}, be.addr)
	_, br := rawExchange(t, addr, "HEAD / HTTP/1.1\r\nHost: s\r\n\r\nGET /204 HTTP/1.1\r\nHost: s\r\n\r\n"+
		"GET /304 HTTP/1.1\r\nHost: s\r\n\r\nGET / HTTP/1.1\r\nHost: s\r\n\r\n")
	res, _ := readResponse(t, br, "HEAD")
	if res.StatusCode != 200 || res.ContentLength != 1000 {
		t.Fatalf("HEAD: %d length %d, want 200 with the GET's length", res.StatusCode, res.ContentLength)
	}
	for _, want := range []int{204, 304} {
		if res, body := readResponse(t, br, "GET"); res.StatusCode != want || body != "" {
			t.Fatalf("answer %d %q, want %d with no body", res.StatusCode, body, want)
		}
	}
	// Had the router waited for a body, this answer would never come.
	if _, body := readResponse(t, br, "GET"); body != "next" {
		t.Fatalf("answer after the bodiless ones: %q", body)
	}
	if n := be.conns.Load(); n != 1 {
		t.Fatalf("%d backend connections, want 1 kept across bodiless answers", n)
	}
}

// echoBackend answers each request with its body, read whole first (net/http
// stops reading a body once its handler answers, so it cannot echo a large
// one as it arrives), and records the framing the router used.
func echoBackend(t *testing.T) *scriptedBackend {
	return startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				io.WriteString(conn, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
				return
			}
			b.heads <- fmt.Sprintf("%s te=%v length=%d", req.Method, req.TransferEncoding, req.ContentLength)
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		}
	})
}

func TestChunkedBodiesBothWays(t *testing.T) {
	be := echoBackend(t)
	_, addr := rawRouter(t, Options{MaxReplayBody: 1024}, be.addr)
	small := "4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
	big := strings.Repeat("0123456789abcdef", 256) // 4 KiB: longer than the replay limit
	var chunks strings.Builder
	for i := 0; i < len(big); i += 1000 {
		part := big[i:min(i+1000, len(big))]
		fmt.Fprintf(&chunks, "%x\r\n%s\r\n", len(part), part)
	}
	chunks.WriteString("0\r\n\r\n")
	_, br := rawExchange(t, addr, "POST /echo HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n"+small+
		"POST /echo HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\n"+chunks.String())
	if res, body := readResponse(t, br, "POST"); body != "wikipedia" || res.StatusCode != 200 {
		t.Fatalf("small chunked body echoed as %d %q", res.StatusCode, body)
	}
	// A short body of unknown length is buffered (so it can be replayed)
	// and sent with its length; a long one is streamed chunked.
	if got := <-be.heads; got != "POST te=[] length=9" {
		t.Errorf("small chunked body reached the backend as %s", got)
	}
	if _, body := readResponse(t, br, "POST"); body != big {
		t.Fatalf("streamed chunked body echoed as %d bytes, want %d", len(body), len(big))
	}
	if got := <-be.heads; got != "POST te=[chunked] length=-1" {
		t.Errorf("long chunked body reached the backend as %s", got)
	}
}

func TestResponseTrailersPassWhenTheClientAccepts(t *testing.T) {
	be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
		b.readRequestHead(br)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n")
	})
	_, addr := rawRouter(t, Options{}, be.addr)
	_, br := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: s\r\nTE: trailers\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if body != "abc" || res.Trailer.Get("X-Sum") != "42" {
		t.Fatalf("body %q trailer %v, want abc and X-Sum: 42", body, res.Trailer)
	}
	if head := <-be.heads; !strings.Contains(head, "Te: trailers\r\n") {
		t.Fatalf("backend was not told the client takes trailers:\n%s", head)
	}
}

func TestResponseEndingAtCloseIsChunkedForHTTP11Clients(t *testing.T) {
	be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
		b.readRequestHead(br)
		io.WriteString(conn, "HTTP/1.0 200 OK\r\n\r\nall of it")
	})
	_, addr := rawRouter(t, Options{}, be.addr)
	_, br := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: s\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if body != "all of it" || len(res.TransferEncoding) == 0 || res.Close {
		t.Fatalf("body %q te %v close %v, want it chunked on a kept connection", body, res.TransferEncoding, res.Close)
	}
}

func TestExpectContinue(t *testing.T) {
	t.Run("SmallBodyIsTakenByTheRouter", func(t *testing.T) {
		b := startBackend(t, "a", "1")
		_, addr := rawRouter(t, Options{}, b.addr)
		conn, br := rawExchange(t, addr, "POST /echo HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		line, _ := br.ReadString('\n')
		if line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("first line %q, want 100 Continue before the body is sent", line)
		}
		br.ReadString('\n')
		io.WriteString(conn, "hello")
		if _, body := readResponse(t, br, "POST"); body != "hello" {
			t.Fatalf("echo %q", body)
		}
	})
	t.Run("StreamedBodyWaitsForTheBackend", func(t *testing.T) {
		be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
			head, _ := b.readRequestHead(br)
			if !strings.Contains(head, "Expect: 100-continue") {
				io.WriteString(conn, "HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\n\r\nno expect")
				return
			}
			io.WriteString(conn, "HTTP/1.1 100 Continue\r\n\r\n")
			body := make([]byte, 2000)
			io.ReadFull(br, body)
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"+strconv.Itoa(bytes.Count(body, []byte("x"))))
		})
		_, addr := rawRouter(t, Options{MaxReplayBody: 100}, be.addr)
		conn, br := rawExchange(t, addr, "PUT /f HTTP/1.1\r\nHost: s\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
		line, _ := br.ReadString('\n')
		if line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("first line %q, want the backend's 100 Continue", line)
		}
		br.ReadString('\n')
		io.WriteString(conn, strings.Repeat("x", 2000))
		if res, body := readResponse(t, br, "PUT"); res.StatusCode != 200 || body != "2000" {
			t.Fatalf("answer %d %q, want 200 2000", res.StatusCode, body)
		}
	})
	t.Run("RefusalBeforeTheBodyIsRelayed", func(t *testing.T) {
		be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
			b.readRequestHead(br)
			io.WriteString(conn, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 7\r\n\r\ntoo big")
			br.ReadByte() // the body must not come
		})
		_, addr := rawRouter(t, Options{MaxReplayBody: 100}, be.addr)
		_, br := rawExchange(t, addr, "PUT /f HTTP/1.1\r\nHost: s\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
		res, body := readResponse(t, br, "PUT")
		if res.StatusCode != 413 || body != "too big" || !res.Close {
			t.Fatalf("answer %d %q close=%v, want the 413 and the connection closed (its body was never read)", res.StatusCode, body, res.Close)
		}
	})
}

func TestMalformedAndSmugglingRequestsAreRefused(t *testing.T) {
	b := startBackend(t, "a", "1")
	_, addr := rawRouter(t, Options{}, b.addr)
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"both framings", "POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two lengths", "POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"signed length", "POST / HTTP/1.1\r\nHost: s\r\nContent-Length: +3\r\n\r\nabc", 400},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"space before colon", "GET / HTTP/1.1\r\nHost: s\r\nContent-Length : 3\r\n\r\n", 400},
		{"folded line", "GET / HTTP/1.1\r\nHost: s\r\nX-A: 1\r\n  2\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"control in value", "GET / HTTP/1.1\r\nHost: s\r\nX-A: a\x00b\r\n\r\n", 400},
		{"bad chunk", "POST /echo HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: s\r\nExpect: teapot\r\n\r\n", 417},
		{"head too large", "GET / HTTP/1.1\r\nHost: s\r\nX-Big: " + strings.Repeat("b", maxHeadBytes) + "\r\n\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.served.Load()
			_, br := rawExchange(t, addr, tc.req)
			res, _ := readResponse(t, br, "GET")
			if res.StatusCode != tc.status || !res.Close {
				t.Fatalf("status %d close=%v, want %d and the connection closed", res.StatusCode, res.Close, tc.status)
			}
			if b.served.Load() != before {
				t.Fatal("the refused request reached the backend")
			}
		})
	}
}

func TestBadBackendAnswersAre502(t *testing.T) {
	for _, tc := range []struct{ name, answer string }{
		{"head too large", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", maxHeadBytes) + "\r\n\r\n"},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n"},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
				b.readRequestHead(br)
				io.WriteString(conn, tc.answer)
			})
			_, addr := rawRouter(t, Options{}, be.addr)
			_, br := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: s\r\n\r\n")
			if res, body := readResponse(t, br, "GET"); res.StatusCode != 502 || !strings.Contains(body, "did not answer") {
				t.Fatalf("answer %d %q, want 502", res.StatusCode, body)
			}
		})
	}
}

// A client that hangs up while its request waits on the backend cancels
// the backend's request (its connection is closed), as net/http's
// ReverseProxy does through the request context.
func TestClientHangUpCancelsTheBackendRequest(t *testing.T) {
	cancelled := make(chan struct{})
	arrived := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(20 * time.Second):
		}
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	r, addr := rawRouter(t, Options{}, l.Addr().String())
	conn, _ := rawExchange(t, addr, "GET /wait HTTP/1.1\r\nHost: s\r\n\r\n")
	<-arrived
	conn.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the backend request was not cancelled after the client hung up")
	}
	eventually(t, "the hang-up to be counted as 499", func() bool {
		bs, _ := backendStatsOf(statsOf(t, r), "b0")
		return bs.InFlight == 0 && bs.Totals.Class4xx == 1
	})
}

// GETs are written on pooled connections without checking them first: a
// connection the backend closed meanwhile is retried on a new one.
func TestGetOnAConnectionTheBackendClosedIsRetriedOnANewOne(t *testing.T) {
	var served atomic.Int64
	be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
		// Each connection answers one request and then closes, without
		// saying so: the pooled connection is dead when the next comes.
		if _, err := b.readRequestHead(br); err != nil {
			return
		}
		served.Add(1)
		io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	r, _ := rawRouter(t, Options{}, be.addr)
	c := newTestClient(1)
	for i := range 5 {
		if st, _, body := get(t, c, r.url+"/"); st != 200 || body != "ok" {
			t.Fatalf("GET %d: %d %q", i, st, body)
		}
	}
	bs, _ := backendStatsOf(statsOf(t, r), "b0")
	if bs.HeldOut || bs.Totals.ProxyErrors != 0 || served.Load() != 5 {
		t.Fatalf("held out %v, %d proxy errors, %d served; want the stale connections retried quietly", bs.HeldOut, bs.Totals.ProxyErrors, served.Load())
	}
}

// FuzzParseRequest checks the request parser against net/http's: whatever
// both accept, they must frame the same way (a disagreement is how
// requests are smuggled past a proxy), and the router must never panic.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET http://h/p HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"\r\nGET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req request
		var err error
		req.buf, err = readHead(bufio.NewReader(bytes.NewReader(data)), nil)
		if err == nil {
			err = parseRequest(&req)
		}
		std, stdErr := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil || stdErr != nil {
			return
		}
		chunked := len(std.TransferEncoding) > 0
		switch {
		case chunked != (req.body == bodyChunked):
			t.Fatalf("chunked: router %v, net/http %v", req.body == bodyChunked, chunked)
		case !chunked && std.ContentLength != req.length && !(req.body == bodyNone && std.ContentLength <= 0):
			t.Fatalf("length: router %d (%v), net/http %d", req.length, req.body, std.ContentLength)
		case std.Method != string(req.method):
			t.Fatalf("method: router %q, net/http %q", req.method, std.Method)
		case std.Host != string(req.host) && req.minor == 1:
			t.Fatalf("host: router %q, net/http %q", req.host, std.Host)
		}
	})
}

// A backend that accepts connections and closes them at once must give a
// quick 502, not a request waiting forever for an answer.
func TestBackendThatClosesOnAcceptGets502(t *testing.T) {
	be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {})
	_, addr := rawRouter(t, Options{}, be.addr)
	for _, req := range []string{"GET / HTTP/1.1\r\nHost: s\r\n\r\n", "POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 2\r\n\r\nhi"} {
		_, br := rawExchange(t, addr, req)
		if res, _ := readResponse(t, br, "GET"); res.StatusCode != http.StatusBadGateway {
			t.Fatalf("%q: status %d, want 502", req[:4], res.StatusCode)
		}
	}
}

// Shutdown waits for requests in flight but not for an open WebSocket,
// and closes idle keep-alive connections at once.
func TestShutdownSkipsUpgradedAndIdleConnections(t *testing.T) {
	b := startBackend(t, "a", "1")
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.install(engine.RouteTable{Epoch: 1, Backends: []engine.Backend{b.backend(1)}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ServeProxy(l) }()
	addr := l.Addr().String()
	ws, _, res := rawUpgrade(t, addr, "/ws")
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", res.StatusCode)
	}
	_, idle := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: s\r\n\r\n")
	readResponse(t, idle, "GET")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an open WebSocket and an idle connection: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("ServeProxy after Shutdown: %v", err)
	}
	if _, err := idle.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after Shutdown: %v, want it closed", err)
	}
	// The WebSocket still works: it is the client's to close.
	io.WriteString(ws, "still")
	buf := make([]byte, 5)
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(ws, buf); err != nil || string(buf) != "still" {
		t.Fatalf("WebSocket after Shutdown: %q, %v", buf, err)
	}
}

// A client that hangs up in the middle of a streamed upload aborts the
// backend request: the backend sees its connection end, not a request
// left waiting for the rest of its body.
func TestClientHangUpDuringAStreamedUploadAbortsIt(t *testing.T) {
	aborted := make(chan error, 1)
	be := startScripted(t, func(conn net.Conn, br *bufio.Reader, b *scriptedBackend) {
		if _, err := b.readRequestHead(br); err != nil {
			return
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, br)
		aborted <- err
	})
	r, addr := rawRouter(t, Options{MaxReplayBody: 100}, be.addr)
	conn, _ := rawExchange(t, addr, "PUT /f HTTP/1.1\r\nHost: s\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 500))
	<-be.heads
	conn.Close()
	select {
	case err := <-aborted:
		if err != nil {
			t.Fatalf("backend read ended with %v, want the connection closed (EOF)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the backend request was not aborted")
	}
	eventually(t, "the upload to be counted as 499", func() bool {
		bs, _ := backendStatsOf(statsOf(t, r), "b0")
		return bs.InFlight == 0 && bs.Totals.Class4xx == 1
	})
}
