package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

func TestTableFlippedHundredTimesUnderLoadLosesNoRequest(t *testing.T) {
	v1a, v1b := startBackend(t, "v1-a", "1"), startBackend(t, "v1-b", "1")
	v2a, v2b := startBackend(t, "v2-a", "2"), startBackend(t, "v2-b", "2")
	r := startRouter(t, Options{})
	tables := [][]engine.Backend{
		{v1a.backend(1), v1b.backend(1)},
		{v1a.backend(3), v1b.backend(3), v2a.backend(1)},
		{v1a.backend(0), v1b.backend(1), v2a.backend(1), v2b.backend(1)},
		{v2a.backend(1), v2b.backend(1)},
	}
	r.apply(t, 1, tables[0]...)
	l := startLoad(t, r.url)
	for i := 1; i <= 100; i++ {
		r.apply(t, uint64(i+1), tables[i%len(tables)]...)
		l.WaitMore(t, 5)
	}
	l.AssertNoFailures(t)
	if l.OK() < 500 {
		t.Fatalf("only %d requests served", l.OK())
	}
	for _, id := range []string{"v1-a", "v1-b", "v2-a", "v2-b"} {
		if l.Served(id) == 0 {
			t.Errorf("backend %s served nothing: the flips did not take effect", id)
		}
	}
	t.Logf("%d requests, 0 failed, over 100 table swaps", l.OK())
}

func TestLongRequestSurvivesItsBackendGoingToWeightZero(t *testing.T) {
	old, next := startBackend(t, "old", "1"), startBackend(t, "new", "2")
	r := startRouter(t, Options{})
	r.apply(t, 1, old.backend(1))

	done := make(chan string, 1)
	go func() {
		res, err := http.Get(r.url + "/hold")
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		done <- fmt.Sprintf("%d %s", res.StatusCode, b)
	}()
	<-old.arrived

	r.apply(t, 2, old.backend(0), next.backend(1))
	c := newTestClient(1)
	for range 5 {
		if _, id, _ := get(t, c, r.url+"/"); id != "new" {
			t.Fatalf("new request went to %q after old's weight became 0", id)
		}
	}
	bs, _ := backendStatsOf(statsOf(t, r), "old")
	if bs.InFlight != 1 || bs.Weight != 0 {
		t.Fatalf("old backend: in flight %d weight %d, want 1 in flight at weight 0", bs.InFlight, bs.Weight)
	}
	// Removing it from the table entirely still reports it while it drains.
	r.apply(t, 3, next.backend(1))
	bs, ok := backendStatsOf(statsOf(t, r), "old")
	if !ok || bs.InFlight != 1 {
		t.Fatalf("removed backend with a request in flight: reported=%v in flight=%d", ok, bs.InFlight)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := r.client.WaitDrained(ctx, []string{"old"}); err == nil {
		t.Fatal("WaitDrained returned while the long request was in flight")
	}
	cancel()

	old.unblock()
	if got := <-done; got != "200 old" {
		t.Fatalf("long request ended %q, want 200 from old", got)
	}
	if err := r.client.WaitDrained(context.Background(), []string{"old"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := backendStatsOf(statsOf(t, r), "old"); ok {
		t.Fatal("drained removed backend still reported")
	}
}

func TestBackendKilledWhenWaitDrainedReturnsLosesNothing(t *testing.T) {
	r := startRouter(t, Options{})
	cur := startBackend(t, "gen-0", "0")
	r.apply(t, 1, cur.backend(1))
	l := startLoad(t, r.url)
	l.WaitMore(t, 20)
	for gen := 1; gen <= 4; gen++ {
		next := startBackend(t, fmt.Sprintf("gen-%d", gen), fmt.Sprint(gen))
		r.apply(t, uint64(gen+1), cur.backend(0), next.backend(1))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.client.WaitDrained(ctx, []string{cur.id}); err != nil {
			t.Fatal(err)
		}
		cancel()
		cur.kill()
		r.apply(t, uint64(gen+1), next.backend(1)) // same epoch: the owner re-applies
		l.WaitMore(t, 40)
		cur = next
	}
	l.AssertNoFailures(t)
	t.Logf("%d requests over 4 drain-and-kill switches, 0 failed", l.OK())
}

func TestClosedBackendIsRetriedElsewhereAndHeldOut(t *testing.T) {
	dead, live := startBackend(t, "dead", "1"), startBackend(t, "live", "1")
	r := startRouter(t, Options{HoldOut: time.Minute})
	r.apply(t, 1, dead.backend(1), live.backend(1))
	dead.kill()

	c := newTestClient(4)
	for i := range 10 {
		if st, id, _ := get(t, c, r.url+"/"); st != 200 || id != "live" {
			t.Fatalf("GET %d: status %d from %q, want 200 from live", i, st, id)
		}
		res, err := c.Post(r.url+"/echo", "text/plain", strings.NewReader("post-body"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(body) != "post-body" {
			t.Fatalf("POST %d: %d %q, want the body echoed by live", i, res.StatusCode, body)
		}
	}
	st := statsOf(t, r)
	bs, _ := backendStatsOf(st, "dead")
	if !bs.HeldOut {
		t.Fatal("dead backend not held out")
	}
	// Held out after the first failure: one retry, then no more picks.
	if bs.Totals.Retries != 1 || bs.Totals.ProxyErrors != 1 {
		t.Fatalf("dead backend: %d retries, %d proxy errors; want 1 and 1", bs.Totals.Retries, bs.Totals.ProxyErrors)
	}
	m, err := r.client.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m, `cutover_router_backend_retries_total{backend="dead",version="1"} 1`) ||
		!strings.Contains(m, `cutover_router_backend_held_out{backend="dead",version="1"} 1`) {
		t.Fatalf("metrics lack the retry and hold-out of dead:\n%s", m)
	}
}

func TestLargeBodyToClosedBackendIsNotReplayed(t *testing.T) {
	dead := startBackend(t, "dead", "1")
	live := startBackend(t, "live", "1")
	r := startRouter(t, Options{MaxReplayBody: 1024})
	r.apply(t, 1, dead.backend(1), live.backend(1))
	dead.kill()
	// Smooth order starts with the first backend: dead.
	res, err := http.Post(r.url+"/echo", "text/plain", bytes.NewReader(make([]byte, 4096)))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: a streamed body cannot be replayed", res.StatusCode)
	}
	if live.served.Load() != 0 {
		t.Fatal("streamed body was replayed on live")
	}
}

func TestAllBackendsDownAnswer503Quickly(t *testing.T) {
	a, b := startBackend(t, "a", "1"), startBackend(t, "b", "1")
	r := startRouter(t, Options{})
	r.apply(t, 1, a.backend(1), b.backend(1))
	a.kill()
	b.kill()
	c := newTestClient(1)
	for range 3 {
		start := time.Now()
		st, _, body := get(t, c, r.url+"/")
		if st != http.StatusServiceUnavailable || body != noBackendBody {
			t.Fatalf("all down: %d %q, want 503 %q", st, body, noBackendBody)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("all down took %v to answer", d)
		}
	}
	r.apply(t, 2)
	st, _, body := get(t, c, r.url+"/")
	if st != http.StatusServiceUnavailable || body != noBackendBody {
		t.Fatalf("empty table: %d %q, want 503 %q", st, body, noBackendBody)
	}
	if n := statsOf(t, r).NoBackend; n != 1 {
		t.Fatalf("no_backend = %d, want 1", n)
	}
}

func TestStreamingResponseFlushesFirstChunkBeforeBackendFinishes(t *testing.T) {
	b := startBackend(t, "a", "1")
	r := startRouter(t, Options{})
	r.apply(t, 1, b.backend(1))
	res, err := http.Get(r.url + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk %q, %v", line, err)
	}
	// The backend signals after its flush, so the chunk can reach the client
	// a moment before the signal; either way the backend is still holding
	// its response open until unblock below.
	select {
	case <-b.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("backend never reached the point after its first flush")
	}
	b.unblock()
	rest, _ := io.ReadAll(br)
	if string(rest) != "last\n" {
		t.Fatalf("rest %q", rest)
	}
	if len(res.TransferEncoding) == 0 || res.TransferEncoding[0] != "chunked" {
		t.Fatalf("transfer encoding %v, want chunked", res.TransferEncoding)
	}
}

func TestLargeBodyIsEchoedIntact(t *testing.T) {
	b := startBackend(t, "a", "1")
	r := startRouter(t, Options{})
	r.apply(t, 1, b.backend(1))
	data := make([]byte, 8<<20)
	rand.Read(data)
	res, err := http.Post(r.url+"/echo", "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, res.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("echoed %d bytes with a different checksum", n)
	}
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	b := startBackend(t, "a", "1")
	r := startRouter(t, Options{})
	r.apply(t, 1, b.backend(1))
	conn, br, res := rawUpgrade(t, strings.TrimPrefix(r.url, "http://"), "/ws")
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", res.StatusCode)
	}
	for _, msg := range []string{"ping", "second message"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q, %v; want %q", buf, err, msg)
		}
	}
	if bs, _ := backendStatsOf(statsOf(t, r), "a"); bs.InFlight != 1 {
		t.Fatalf("open WebSocket: in flight %d, want 1 (a drain must wait for it)", bs.InFlight)
	}
}

func TestForwardedHeadersAreSetAndHostKept(t *testing.T) {
	b := startBackend(t, "a", "1")
	r := startRouter(t, Options{})
	r.apply(t, 1, b.backend(1))
	req, _ := http.NewRequest(http.MethodGet, r.url+"/headers", nil)
	req.Host = "shop.example"
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // spoofed by the client: dropped
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if got, want := string(body), "127.0.0.1|http|shop.example|shop.example"; got != want {
		t.Fatalf("backend saw %q, want %q", got, want)
	}
}

func TestStickyCookieKeepsClientOnItsVersion(t *testing.T) {
	v1, v2 := startBackend(t, "v1", "1.0"), startBackend(t, "v2", "2.0")
	r := startRouter(t, Options{StickyCookie: "cutover_v"})
	r.apply(t, 1, v1.backend(1), v2.backend(1))

	res, err := http.Get(r.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	first := res.Header.Get("X-Version")
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "cutover_v" {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != first {
		t.Fatalf("first answer from %s set cookie %v, want cutover_v=%s", first, cookie, first)
	}
	for i := range 20 {
		req, _ := http.NewRequest(http.MethodGet, r.url+"/", nil)
		req.AddCookie(cookie)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if v := res.Header.Get("X-Version"); v != first {
			t.Fatalf("request %d with the cookie went to %s, want %s", i, v, first)
		}
		if len(res.Cookies()) != 0 {
			t.Fatalf("cookie set again although it was right: %v", res.Cookies())
		}
	}
	// The client's version loses its weight: route normally, reset the cookie.
	other := map[string]string{"1.0": "2.0", "2.0": "1.0"}[first]
	weights := map[string]int{first: 0, other: 1}
	r.apply(t, 2, v1.backend(weights["1.0"]), v2.backend(weights["2.0"]))
	req, _ := http.NewRequest(http.MethodGet, r.url+"/", nil)
	req.AddCookie(cookie)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if v := res.Header.Get("X-Version"); v != other {
		t.Fatalf("after %s lost its weight the request went to %s", first, v)
	}
	if cs := res.Cookies(); len(cs) != 1 || cs[0].Value != other {
		t.Fatalf("cookie not reset to %s: %v", other, cs)
	}
}

func TestStickyCookieIsOffByDefault(t *testing.T) {
	b := startBackend(t, "a", "1")
	r := startRouter(t, Options{})
	r.apply(t, 1, b.backend(1))
	res, err := http.Get(r.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(res.Cookies()) != 0 {
		t.Fatalf("cookies set without --sticky-cookie: %v", res.Cookies())
	}
}

func TestVersionHeaderForcesVersion(t *testing.T) {
	stable, canary := startBackend(t, "stable", "1.0"), startBackend(t, "canary", "1.1")
	r := startRouter(t, Options{VersionHeader: "X-Cutover-Version"})
	r.apply(t, 1, stable.backend(99), canary.backend(1))
	c := newTestClient(1)
	for range 10 {
		if st, id, _ := get(t, c, r.url+"/", "X-Cutover-Version", "1.1"); st != 200 || id != "canary" {
			t.Fatalf("forced 1.1: %d from %q", st, id)
		}
	}
	st, _, body := get(t, c, r.url+"/", "X-Cutover-Version", "9.9")
	if st != http.StatusServiceUnavailable || !strings.Contains(body, "no backend for version 9.9") {
		t.Fatalf("unknown version: %d %q, want 503 naming the version", st, body)
	}
	r2 := startRouter(t, Options{})
	r2.apply(t, 1, stable.backend(1), canary.backend(0))
	if _, id, _ := get(t, c, r2.url+"/", "X-Cutover-Version", "1.1"); id != "stable" {
		t.Fatalf("header honoured without --version-header: went to %q", id)
	}
}

func TestBackendConnectionsAreReusedAcrossTableSwaps(t *testing.T) {
	a, b := startBackend(t, "a", "1"), startBackend(t, "b", "2")
	r := startRouter(t, Options{})
	c := newTestClient(1)
	for i := range 40 {
		r.apply(t, uint64(i+1), a.backend(1+i%3), b.backend(1))
		for range 3 { // each weighting sends at least one of three to b
			get(t, c, r.url+"/")
		}
	}
	if a.conns.Load() != 1 || b.conns.Load() != 1 {
		t.Fatalf("%d and %d backend connections for 120 sequential requests over 40 swaps, want 1 per backend", a.conns.Load(), b.conns.Load())
	}
	// A backend address dropped from the table has its idle connections closed.
	r.apply(t, 100, b.backend(1))
	eventually(t, "a's idle connection to close", func() bool { return a.open.Load() == 0 })
	if b.open.Load() != 1 {
		t.Fatalf("b has %d open connections, want its 1 kept", b.open.Load())
	}
}

// A backend that received a request and died before answering may have
// acted on it: a POST is not sent again elsewhere (it could be done twice),
// while a GET, or a POST with an Idempotency-Key, is.
func TestRequestTheBackendReceivedIsReplayedOnlyWhenIdempotent(t *testing.T) {
	a, b := startBackend(t, "a", "1"), startBackend(t, "b", "1")
	// Both die, so both end up held out; a retry then still tries one.
	r := startRouter(t, Options{})
	r.apply(t, 1, a.backend(1), b.backend(1))
	c := newTestClient(4)
	served := func() int64 { return a.served.Load() + b.served.Load() }

	cases := []struct {
		name   string
		method string
		key    string
		want   int64 // backends that received it
	}{
		{"POST", http.MethodPost, "", 1},
		{"GET", http.MethodGet, "", 2},
		{"POST with an Idempotency-Key", http.MethodPost, "k-1", 2},
	}
	for _, tc := range cases {
		before := served()
		req, _ := http.NewRequest(tc.method, r.url+"/die", strings.NewReader("order #1"))
		if tc.key != "" {
			req.Header.Set("Idempotency-Key", tc.key)
		}
		res, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode/100 == 2 {
				t.Fatalf("%s: status %d from a backend that died", tc.name, res.StatusCode)
			}
		}
		if got := served() - before; got != tc.want {
			t.Errorf("%s reached %d backends, want %d", tc.name, got, tc.want)
		}
	}
}
