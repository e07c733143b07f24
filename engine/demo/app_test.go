package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine/router"
)

func TestErrorRateFailsExactFractionAfterThreshold(t *testing.T) {
	h := NewHandler(AppConfig{Version: "1.4.0-errors", ErrorRate: 0.3, ErrorsAfter: 20, Hostname: "h"})
	var failedFirst20, failedNext100 int
	for i := 1; i <= 120; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		if rec.Code == http.StatusInternalServerError {
			if i <= 20 {
				failedFirst20++
			} else {
				failedNext100++
			}
		}
	}
	if failedFirst20 != 0 {
		t.Errorf("errors in the first 20 requests = %d, want 0", failedFirst20)
	}
	if failedNext100 != 30 {
		t.Errorf("errors in the next 100 requests = %d, want 30", failedNext100)
	}
}

func TestHealthProbesDoNotCountTowardsErrors(t *testing.T) {
	h := NewHandler(AppConfig{Version: "x", ErrorRate: 1, ErrorsAfter: 1, Hostname: "h"})
	for range 5 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("/healthz = %d, want 200 even with error rate 1", rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("first request = %d, want 200 (errors start after 1)", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("second request = %d, want 500", rec.Code)
	}
}

func TestAnswerNamesVersionAndHost(t *testing.T) {
	h := NewHandler(AppConfig{Version: "1.1.0", Hostname: "box"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/any/path", nil))
	if got := rec.Body.String(); got != "cutover-demo 1.1.0 (box)\n" {
		t.Errorf("body = %q", got)
	}
	if v := rec.Header().Get("X-Demo-Version"); v != "1.1.0" {
		t.Errorf("X-Demo-Version = %q", v)
	}

	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept", "application/json")
	h.ServeHTTP(rec, req)
	var a answer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("JSON answer %q: %v", rec.Body.String(), err)
	}
	if a.Version != "1.1.0" || a.Hostname != "box" || a.App != AppName {
		t.Errorf("JSON answer = %+v", a)
	}
}

func TestPostBodyIsReadAndCounted(t *testing.T) {
	h := NewHandler(AppConfig{Version: "1.0.0", Hostname: "box"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/upload", strings.NewReader(strings.Repeat("x", 70000))))
	if got := rec.Body.String(); !strings.Contains(got, "read 70000 bytes") {
		t.Errorf("body = %q, want it to count 70000 bytes", got)
	}
}

func TestFailHealthAnswers503(t *testing.T) {
	h := NewHandler(AppConfig{Version: "1.3.0", FailHealth: true})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("/healthz = %d, want 503", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("/ = %d, want 200: only health fails", rec.Code)
	}
}

func TestSleepQueryHoldsTheRequest(t *testing.T) {
	h := NewHandler(AppConfig{Version: "1.0.0"})
	// A cancelled request context ends the sleep early, which proves the
	// handler was waiting on it without the test having to wait itself.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?sleep=1h", nil).WithContext(ctx))
		done <- rec
	}()
	select {
	case <-done:
		t.Fatal("request with sleep=1h returned before it was cancelled")
	default:
	}
	cancel()
	if rec := <-done; rec.Body.Len() != 0 {
		t.Errorf("cancelled sleeping request wrote %q", rec.Body.String())
	}

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?sleep=soon", nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("sleep=soon answered %d, want 400", rec.Code)
	}
}

func TestAppConfigFromEnvReadsKnobsAndNamesBadOnes(t *testing.T) {
	env := map[string]string{
		"DEMO_VERSION": "1.4.0", "PORT": "9000", "DEMO_ERROR_RATE": "0.3", "DEMO_ERRORS_AFTER": "20",
		"DEMO_LATENCY": "20ms", "DEMO_SLOW_START": "2s", "DEMO_CRASH": "1", "DEMO_FAIL_HEALTH": "true",
	}
	cfg, err := appConfigFrom(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := AppConfig{Version: "1.4.0", Port: 9000, ErrorRate: 0.3, ErrorsAfter: 20, Latency: 20 * time.Millisecond,
		SlowStart: 2 * time.Second, Crash: true, FailHealth: true, ShutdownGrace: 30 * time.Second}
	if cfg != want {
		t.Errorf("config = %+v\nwant     %+v", cfg, want)
	}

	bad := map[string]string{"DEMO_ERROR_RATE": "1.5", "PORT": "http"}
	_, err = appConfigFrom(func(k string) string { return bad[k] })
	if err == nil || !strings.Contains(err.Error(), "DEMO_ERROR_RATE") || !strings.Contains(err.Error(), "PORT") {
		t.Errorf("error = %v, want it to name DEMO_ERROR_RATE and PORT", err)
	}
}

func TestServeListenerDrainsInFlightRequestOnShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeListener(ctx, ln, AppConfig{Version: "1.0.0", ShutdownGrace: 5 * time.Second}) }()

	// Send the slow request on its own connection before shutting down. The
	// server accepts connections in order, so once a later /healthz probe is
	// answered the slow one is accepted, and Shutdown must let it finish.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /?sleep=200ms HTTP/1.1\r\nHost: demo\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request during shutdown: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "cutover-demo 1.0.0") {
		t.Errorf("in-flight request during shutdown: %s %q", resp.Status, body)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeListener = %v", err)
	}
}

func TestServeReturnsErrCrashWhenAskedTo(t *testing.T) {
	if err := Serve(context.Background(), AppConfig{Crash: true}); err != ErrCrash {
		t.Errorf("Serve = %v, want ErrCrash", err)
	}
}

// A backend that keeps idle connections longer than the router's pool
// never shows the router a closed idle connection; the demo app closes
// first, as many real servers do, so tests exercise the router's handling.
func TestIdleKeepAliveIsShorterThanTheRouterPool(t *testing.T) {
	if DefaultIdleTimeout <= 0 || DefaultIdleTimeout >= router.IdlePoolTimeout {
		t.Fatalf("demo idle timeout %s, want more than 0 and less than the router's idle pool timeout %s", DefaultIdleTimeout, router.IdlePoolTimeout)
	}
}

func TestServeListenerClosesIdleKeepAliveConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeListener(ctx, ln, AppConfig{Version: "1.0.0", IdleTimeout: 50 * time.Millisecond})
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: demo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle keep-alive connection: read %v, want EOF once the idle timeout passed", err)
	}
}
