package router

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/cutover/cutover/engine"
)

// maxTableBody bounds a PUT /v1/table body.
const maxTableBody = 4 << 20

// StateResponse is the body of GET /v1/state: the table and the stats read
// together.
type StateResponse struct {
	Table engine.RouteTable `json:"table"`
	Stats engine.Stats      `json:"stats"`
}

// HealthResponse is the body of GET /v1/health.
type HealthResponse struct {
	Status   string `json:"status"`
	Epoch    uint64 `json:"epoch"`
	Backends int    `json:"backends"`
}

// errorResponse is every admin error body.
type errorResponse struct {
	Error string `json:"error"`
}

// AdminHandler is the admin API: /v1/table, /v1/stats, /v1/state,
// /v1/health and /metrics, behind the bearer token when one is set.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.handleHealth)
	mux.HandleFunc("GET /v1/table", s.handleGetTable)
	mux.HandleFunc("PUT /v1/table", s.handlePutTable)
	mux.HandleFunc("GET /v1/stats", s.handleStats)
	mux.HandleFunc("GET /v1/state", s.handleState)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	for _, path := range []string{"/v1/health", "/v1/table", "/v1/stats", "/v1/state", "/metrics"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return s.authorize(mux)
}

func (s *Server) authorize(next http.Handler) http.Handler {
	if s.opts.Token == "" {
		return next
	}
	want := []byte("Bearer " + s.opts.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cutover router"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	t := s.table.Load()
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ok", Epoch: t.spec.Epoch, Backends: len(t.spec.Backends)})
}

func (s *Server) handleGetTable(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Table())
}

func (s *Server) handlePutTable(w http.ResponseWriter, r *http.Request) {
	var rt engine.RouteTable
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTableBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rt); err != nil {
		writeError(w, http.StatusBadRequest, "decode table: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "decode table: trailing data after the JSON object")
		return
	}
	err := s.Apply(r.Context(), rt)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, s.Table())
	case errors.Is(err, ErrInvalidTable):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, engine.ErrStaleEpoch):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	t, st := s.State()
	writeJSON(w, http.StatusOK, StateResponse{Table: t, Stats: st})
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	writeMetrics(w, s.Stats())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorResponse{Error: msg})
}

// ListenAdmin opens the admin listener for addr: "unix:/path/to.sock" (the
// socket is made 0600 and a stale socket from a killed router is replaced),
// or a loopback "host:port", which is only allowed with a token because any
// local user can connect to it.
func ListenAdmin(addr string, haveToken bool) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return listenUnix(path)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: want unix:/path or 127.0.0.1:port: %w", addr, err)
	}
	if !isLoopback(host) {
		return nil, fmt.Errorf("admin address %q is not loopback: the admin API must not be reachable from the network", addr)
	}
	if !haveToken {
		return nil, fmt.Errorf("admin address %q is TCP: a token file is required so other local users cannot change routing", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen admin: %w", err)
	}
	return l, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func listenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("admin address unix: needs a socket path")
	}
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale admin socket: %w", err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen admin: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict admin socket: %w", err)
	}
	return l, nil
}
