package router

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

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
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("decode table: the body is larger than %d bytes", maxTableBody))
			return
		}
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

// listenUnix listens on a unix socket at path that only this user can
// connect to from the moment it exists. A socket left by a killed router
// (one that refuses connections) is replaced; any other file is left alone.
func listenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("admin address unix: needs a socket path")
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// Linux creates the socket file with the mode of the socket itself
	// (masked by the umask), so making the socket 0600 before bind closes
	// the window in which a chmod after Listen would leave it open.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = syscall.Fchmod(int(fd), 0o600) }); cerr != nil {
			return cerr
		}
		return err
	}}
	l, err := lc.Listen(context.Background(), "unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen admin: %w", err)
	}
	// Kernels that ignore the socket's mode at bind still get a private
	// socket, if only from here on.
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict admin socket: %w", err)
	}
	return l, nil
}

// removeStaleSocket clears path for a new admin socket: nothing there is
// fine, a socket nobody answers on is removed, and anything else (a live
// socket, a file, a directory, a symlink) is refused and kept.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin socket path %s is not a socket but %s: refusing to replace it; remove it or choose another path", path, describeMode(fi.Mode()))
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("admin socket %s is in use by another process", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("admin socket %s exists and cannot be told stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale admin socket: %w", err)
	}
	return nil
}

// describeMode names the kind of file a mode is, for error messages.
func describeMode(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symlink"
	case fs.ModeNamedPipe:
		return "a named pipe"
	}
	return "a " + m.Type().String() + " file"
}
