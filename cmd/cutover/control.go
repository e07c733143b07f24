package main

// The control socket of `cutover serve`: how `cutover approve`, `rollback`
// and `status` reach a release that serve owns instead of running it a
// second time. The lease of every release serve runs names the socket
// (engine.Owner.Control); the socket is mode 0600 in a 0700 directory, and
// the server also checks that the peer runs as its own user (or root).
// The protocol is JSON over HTTP, as the router's admin API is.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/journal"
)

// controlAnswerWithin bounds how long a CLI waits for serve to take an
// order: past it, an emergency rollback goes ahead on its own (serve is
// hung or dead), and an approve says serve did not answer.
const controlAnswerWithin = 2 * time.Second

// orderRequest is one order for a release serve runs. Follow says how
// long the answer streams: "answer" until the release answered the order
// (accepted or refused), "end" until the release ends.
type orderRequest struct {
	Service string       `json:"service"`
	Order   engine.Order `json:"order"`
	Follow  string       `json:"follow"`
}

// controlLine is one line of an order's answer stream (NDJSON).
type controlLine struct {
	Event   *engine.Event  `json:"event,omitempty"`
	Note    string         `json:"note,omitempty"`    // what serve did instead of the order
	Refused string         `json:"refused,omitempty"` // the release refused the order: why
	Outcome engine.Outcome `json:"outcome,omitempty"` // with Done, how the release ended
	Error   string         `json:"error,omitempty"`
	Done    bool           `json:"done,omitempty"` // the last line
}

// controlServer serves the control socket over the runner's releases.
type controlServer struct {
	path string
	runs *engine.Runner
	srv  *http.Server
	ln   net.Listener
}

// listenControl opens the control socket at path (in a directory only
// this user can enter). A socket left by a dead serve is replaced; one a
// live serve answers on is not.
func listenControl(path string, runs *engine.Runner) (*controlServer, error) {
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another cutover serve answers on it; one serve per state directory", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("control socket %s: remove the stale one: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	cs := &controlServer{path: path, runs: runs, ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/releases", cs.releases)
	mux.HandleFunc("POST /v1/orders", cs.order)
	cs.srv = &http.Server{Handler: cs.peerCheck(mux), ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, peerKey{}, c) }}
	go func() { _ = cs.srv.Serve(ln) }()
	return cs, nil
}

// Close stops serving and removes the socket.
func (cs *controlServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = cs.srv.Shutdown(ctx)
	_ = os.Remove(cs.path)
}

type peerKey struct{}

// peerCheck refuses a peer running as another user than serve (root
// aside): the socket's mode already keeps them out; this holds even if
// someone loosened it.
func (cs *controlServer) peerCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uc, ok := r.Context().Value(peerKey{}).(*net.UnixConn)
		if !ok {
			controlError(w, http.StatusForbidden, "not a unix socket peer")
			return
		}
		raw, err := uc.SyscallConn()
		if err != nil {
			controlError(w, http.StatusForbidden, err.Error())
			return
		}
		var cred *syscall.Ucred
		var cerr error
		_ = raw.Control(func(fd uintptr) {
			cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		})
		if cerr != nil || cred == nil {
			controlError(w, http.StatusForbidden, fmt.Sprintf("peer credentials: %v", cerr))
			return
		}
		if int(cred.Uid) != os.Getuid() && cred.Uid != 0 {
			controlError(w, http.StatusForbidden, fmt.Sprintf("uid %d is not serve's user", cred.Uid))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func controlError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// releases answers the snapshots of the releases serve runs.
func (cs *controlServer) releases(w http.ResponseWriter, r *http.Request) {
	var out []engine.Snapshot
	for _, run := range cs.runs.List() {
		out = append(out, run.Release.Snapshot())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// orderAnswerWithin bounds an "answer" stream: a release answers an order
// at its next tick or checkpoint, well within it.
const orderAnswerWithin = 10 * time.Second

// order gives a release serve runs an order and streams what follows.
func (cs *controlServer) order(w http.ResponseWriter, r *http.Request) {
	var req orderRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		controlError(w, http.StatusBadRequest, "order: "+err.Error())
		return
	}
	run, ok := cs.runs.Live(req.Service)
	if !ok {
		controlError(w, http.StatusNotFound, "no release of "+req.Service+" runs in cutover serve")
		return
	}
	rel, o := run.Release, req.Order
	events, unsub := rel.Subscribe()
	defer unsub()
	note := ""
	if sn := rel.Snapshot(); o.Command == engine.CmdRollback && (sn.Kind == engine.KindRollback || sn.State == engine.ReleaseRollingBack) {
		note = "already rolling back (" + sn.ID + "); following it"
	} else if err := rel.Do(o); err != nil {
		controlError(w, http.StatusConflict, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func(l controlLine) {
		_ = enc.Encode(l)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	flush(controlLine{Note: note})
	var limit <-chan time.Time
	if req.Follow == "answer" && note == "" {
		limit = time.After(orderAnswerWithin)
	}
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				outcome, err := run.Wait(r.Context())
				l := controlLine{Outcome: outcome, Done: true}
				if err != nil {
					l.Error = err.Error()
				}
				flush(l)
				return
			}
			flush(controlLine{Event: &ev})
			if limit != nil && answers(ev, o) {
				l := controlLine{Done: true}
				if refused(ev) {
					l.Refused = ev.Message
				}
				flush(l)
				return
			}
		case <-limit:
			flush(controlLine{Note: "the release took the order but has not answered it yet", Done: true})
			return
		case <-r.Context().Done():
			return
		}
	}
}

// answers says ev is the release's answer to o: its command event, by
// the same person.
func answers(ev engine.Event, o engine.Order) bool {
	return ev.Command == o.Command && ev.Actor != nil && *ev.Actor == o.By &&
		(ev.Kind == engine.EventCommand || ev.Kind == engine.EventResumed)
}

// refused says a command event is the engine refusing the command.
func refused(ev engine.Event) bool { return strings.Contains(ev.Message, " refused: ") }

// controlClient talks to a serve's control socket.
type controlClient struct {
	path string
	hc   *http.Client
}

func dialControl(path string) *controlClient {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: controlAnswerWithin}
			return d.DialContext(ctx, "unix", path)
		},
		// A hung serve accepts the connection (the kernel does) but never
		// answers: the headers must come within the bound.
		ResponseHeaderTimeout: controlAnswerWithin,
	}
	return &controlClient{path: path, hc: &http.Client{Transport: tr}}
}

// errNoAnswer says serve did not answer at all (dead, hung, gone): the
// order was not taken, as far as anyone knows.
var errNoAnswer = errors.New("cutover serve did not answer")

// order sends o for service's release and calls each for every line of the
// answer, until the last one, which it returns. An error wrapping
// errNoAnswer means serve never answered; any other error is serve's
// refusal, or a stream cut short (serve died after taking the order).
func (c *controlClient) order(ctx context.Context, service string, o engine.Order, follow string, each func(controlLine)) (controlLine, error) {
	body, err := json.Marshal(orderRequest{Service: service, Order: o, Follow: follow})
	if err != nil {
		return controlLine{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://serve/v1/orders", strings.NewReader(string(body)))
	if err != nil {
		return controlLine{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return controlLine{}, fmt.Errorf("%w on %s within %s: %v", errNoAnswer, c.path, controlAnswerWithin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return controlLine{}, fmt.Errorf("cutover serve: %s", e.Error)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l controlLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return controlLine{}, fmt.Errorf("cutover serve: bad answer line: %w", err)
		}
		if each != nil {
			each(l)
		}
		if l.Done {
			return l, nil
		}
	}
	return controlLine{}, fmt.Errorf("cutover serve stopped answering before the release answered: %v", sc.Err())
}

// releases lists the snapshots of the releases serve runs.
func (c *controlClient) releases(ctx context.Context) ([]engine.Snapshot, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://serve/v1/releases", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoAnswer, err)
	}
	defer resp.Body.Close()
	var out []engine.Snapshot
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// servedBy returns the control socket of the cutover serve that owns the
// service's release in progress, if one does on this host and still runs.
func (s *service) servedBy(ctx context.Context) (*controlClient, engine.Lease, bool) {
	l, ok, err := s.journal.Active(ctx, s.svc.Name)
	if err != nil || !ok || l.Owner.Control == "" || l.Owner.Host != hostname() {
		return nil, engine.Lease{}, false
	}
	if !l.Live(time.Now(), hostname(), journal.OwnerAlive) {
		return nil, engine.Lease{}, false
	}
	return dialControl(l.Owner.Control), l, true
}
