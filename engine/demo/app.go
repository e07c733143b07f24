// Package demo is the small HTTP service cutover releases in demos and
// tests, and the builder of its FROM-scratch images. The app is the cutover
// binary itself run as `cutover demo-app`, so an image needs nothing else.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// AppName is what the app calls itself in every answer.
const AppName = "cutover-demo"

// CrashExitCode is the exit status of an app asked to crash (DEMO_CRASH).
const CrashExitCode = 3

// DefaultPort is the port the app listens on when PORT is unset.
const DefaultPort = 8080

// DefaultIdleTimeout is how long the app keeps an idle keep-alive
// connection. It is shorter than the router's idle pool timeout
// (router.IdlePoolTimeout), as with many real servers, so the router meets
// backends that close idle connections under it and must cope.
const DefaultIdleTimeout = 30 * time.Second

// ErrCrash is returned by Serve when the config asks the app to crash at start.
var ErrCrash = errors.New("DEMO_CRASH is set: crashing on purpose")

// AppConfig holds the app's knobs; AppConfigFromEnv reads them from the
// environment variables named beside each field.
type AppConfig struct {
	Version     string        // DEMO_VERSION
	Port        int           // PORT (default 8080)
	ErrorRate   float64       // DEMO_ERROR_RATE: fraction of requests answered 500, 0..1
	ErrorsAfter int           // DEMO_ERRORS_AFTER: serve this many requests cleanly before erroring
	Latency     time.Duration // DEMO_LATENCY: added to every request but health probes
	Crash       bool          // DEMO_CRASH: exit with CrashExitCode at start
	SlowStart   time.Duration // DEMO_SLOW_START: wait before listening
	FailHealth  bool          // DEMO_FAIL_HEALTH: /healthz answers 503
	// ShutdownGrace bounds how long in-flight requests may finish after
	// the context ends (SIGTERM from `docker stop`).
	ShutdownGrace time.Duration
	// IdleTimeout closes keep-alive connections idle this long (default
	// DefaultIdleTimeout); tests shorten it.
	IdleTimeout time.Duration
	// Hostname is reported in answers so a caller sees which instance answered;
	// empty means os.Hostname (the container ID in Docker).
	Hostname string
}

// AppConfigFromEnv reads the app's knobs from the environment; a malformed
// value is an error naming the variable, so a bad image fails loudly.
func AppConfigFromEnv() (AppConfig, error) {
	return appConfigFrom(os.Getenv)
}

func appConfigFrom(getenv func(string) string) (AppConfig, error) {
	cfg := AppConfig{
		Version:       getenv("DEMO_VERSION"),
		Port:          DefaultPort,
		ShutdownGrace: 30 * time.Second,
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	var errs []error
	parse := func(name string, fn func(string) error) {
		if v := getenv(name); v != "" {
			if err := fn(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	}
	parse("PORT", func(v string) (err error) {
		cfg.Port, err = strconv.Atoi(v)
		if err == nil && (cfg.Port <= 0 || cfg.Port > 65535) {
			err = errors.New("not a TCP port")
		}
		return err
	})
	parse("DEMO_ERROR_RATE", func(v string) (err error) {
		cfg.ErrorRate, err = strconv.ParseFloat(v, 64)
		if err == nil && (cfg.ErrorRate < 0 || cfg.ErrorRate > 1 || math.IsNaN(cfg.ErrorRate)) {
			err = errors.New("must be between 0 and 1")
		}
		return err
	})
	parse("DEMO_ERRORS_AFTER", func(v string) (err error) {
		cfg.ErrorsAfter, err = strconv.Atoi(v)
		if err == nil && cfg.ErrorsAfter < 0 {
			err = errors.New("must not be negative")
		}
		return err
	})
	parse("DEMO_LATENCY", func(v string) (err error) {
		cfg.Latency, err = time.ParseDuration(v)
		return err
	})
	parse("DEMO_SLOW_START", func(v string) (err error) {
		cfg.SlowStart, err = time.ParseDuration(v)
		return err
	})
	parse("DEMO_CRASH", func(v string) (err error) {
		cfg.Crash, err = strconv.ParseBool(v)
		return err
	})
	parse("DEMO_FAIL_HEALTH", func(v string) (err error) {
		cfg.FailHealth, err = strconv.ParseBool(v)
		return err
	})
	return cfg, errors.Join(errs...)
}

// Serve runs the app on :cfg.Port until ctx ends, then lets in-flight
// requests finish (up to cfg.ShutdownGrace). It returns ErrCrash at once
// when cfg.Crash is set.
func Serve(ctx context.Context, cfg AppConfig) error {
	if cfg.Crash {
		return ErrCrash
	}
	if cfg.SlowStart > 0 {
		select {
		case <-time.After(cfg.SlowStart):
		case <-ctx.Done():
			return nil
		}
	}
	port := cfg.Port
	if port == 0 {
		port = DefaultPort
	}
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("listen on port %d: %w", port, err)
	}
	return ServeListener(ctx, ln, cfg)
}

// ServeListener is Serve on a listener the caller opened (tests listen on
// 127.0.0.1:0). Crash and SlowStart are Serve's business and ignored here.
func ServeListener(ctx context.Context, ln net.Listener, cfg AppConfig) error {
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	srv := &http.Server{
		Handler:           NewHandler(cfg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       idle,
	}
	fmt.Fprintf(os.Stdout, "%s %s listening on %s\n", AppName, cfg.Version, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	grace := cfg.ShutdownGrace
	if grace <= 0 {
		grace = 30 * time.Second
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	fmt.Fprintf(os.Stdout, "%s %s stopped\n", AppName, cfg.Version)
	return nil
}

// handler answers every path with the app's version; /healthz is the probe.
type handler struct {
	cfg      AppConfig
	hostname string
	served   atomic.Int64 // requests counted towards the error schedule
}

// NewHandler returns the app's HTTP handler.
func NewHandler(cfg AppConfig) http.Handler {
	host := cfg.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	return &handler{cfg: cfg, hostname: host}
}

// answer is the JSON form of a reply.
type answer struct {
	App      string `json:"app"`
	Version  string `json:"version"`
	Hostname string `json:"hostname"`
	Request  int64  `json:"request"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	Bytes    int64  `json:"bytes,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Demo-Version", h.cfg.Version)
	w.Header().Set("X-Demo-Host", h.hostname)
	if r.URL.Path == "/healthz" {
		h.health(w, r)
		return
	}
	// Read the whole body first: a proxy must deliver it intact, and the
	// byte count in the answer lets a test check it did.
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, fmt.Sprintf("read body: %v", err), http.StatusBadRequest)
		return
	}
	delay := h.cfg.Latency
	if s := r.URL.Query().Get("sleep"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			http.Error(w, fmt.Sprintf("bad sleep %q: want a duration like 300ms", s), http.StatusBadRequest)
			return
		}
		delay += d
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	seq := h.served.Add(1)
	a := answer{App: AppName, Version: h.cfg.Version, Hostname: h.hostname, Request: seq, Method: r.Method, Path: r.URL.Path, Bytes: n}
	status := http.StatusOK
	if failAt(seq, h.cfg.ErrorsAfter, h.cfg.ErrorRate) {
		status = http.StatusInternalServerError
		a.Error = "injected error (DEMO_ERROR_RATE)"
	}
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(a)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	line := fmt.Sprintf("%s %s (%s)", AppName, a.Version, a.Hostname)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		line += fmt.Sprintf(" read %d bytes", n)
	}
	if a.Error != "" {
		line += ": " + a.Error
	}
	fmt.Fprintln(w, line)
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if h.cfg.FailHealth {
		http.Error(w, "unhealthy (DEMO_FAIL_HEALTH)", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// failAt says whether request number seq (1-based) is answered with an
// error. After the first `after` requests, errors are spread evenly so that
// exactly floor(k*rate) of the next k requests fail: deterministic, so a
// test knows how many errors it will see, yet mixed in with successes.
func failAt(seq int64, after int, rate float64) bool {
	if rate <= 0 || seq <= int64(after) {
		return false
	}
	k := float64(seq - int64(after))
	return math.Floor(k*rate) > math.Floor((k-1)*rate)
}

func wantsJSON(r *http.Request) bool {
	if r.URL.Query().Get("format") == "json" {
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

// Probe asks the app on 127.0.0.1:port for /healthz once, as a Docker
// HEALTHCHECK does inside a scratch image where there is no curl.
func Probe(ctx context.Context, port int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 400 {
		return fmt.Errorf("probe %s: %s", url, resp.Status)
	}
	return nil
}
