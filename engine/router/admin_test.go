package router

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
)

func TestTableReadsBackExactlyWhatWasApplied(t *testing.T) {
	r := startRouter(t, Options{})
	want := engine.RouteTable{Epoch: 3, Backends: []engine.Backend{
		{ID: "web-1.1-a", Addr: "127.0.0.1:49153", Version: "1.1", Weight: 5},
		{ID: "web-1.0-a", Addr: "localhost:49154", Version: "1.0", Weight: 95},
	}}
	if err := r.client.Apply(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	got, err := r.client.Table(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
	table, st, err := r.client.State(context.Background())
	if err != nil || !reflect.DeepEqual(table, want) || st.Epoch != 3 || len(st.Backends) != 2 {
		t.Fatalf("State = %+v, epoch %d, %d backends, %v", table, st.Epoch, len(st.Backends), err)
	}
}

func TestStaleEpochIsRefusedAndChangesNothing(t *testing.T) {
	b := startBackend(t, "a", "1")
	r := startRouter(t, Options{})
	ctx := context.Background()
	r.apply(t, 5, b.backend(1))

	err := r.client.Apply(ctx, engine.RouteTable{Epoch: 4, Backends: []engine.Backend{}})
	if !errors.Is(err, engine.ErrStaleEpoch) {
		t.Fatalf("epoch 4 after 5: %v, want ErrStaleEpoch", err)
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusConflict || !strings.Contains(apiErr.Message, "epoch 4 is older than the router's epoch 5") {
		t.Fatalf("error %v, want a 409 naming both epochs", err)
	}
	if got, _ := r.client.Table(ctx); got.Epoch != 5 || len(got.Backends) != 1 {
		t.Fatalf("table changed by a stale write: %+v", got)
	}
	// The owner of epoch 5 may re-apply; a newer epoch is adopted.
	r.apply(t, 5, b.backend(2))
	r.apply(t, 9, b.backend(3))
	if got, _ := r.client.Table(ctx); got.Epoch != 9 || got.Backends[0].Weight != 3 {
		t.Fatalf("table %+v, want epoch 9 weight 3", got)
	}
}

// Two writers that read the same epoch and claimed the next: the first to
// write owns it; the other is refused, and the owner may write again.
func TestSameEpochFromAnotherWriterIsRefused(t *testing.T) {
	b := startBackend(t, "a", "1")
	r := startRouter(t, Options{})
	ctx := context.Background()
	mine := engine.RouteTable{Epoch: 6, Writer: "deploy-1", Backends: []engine.Backend{b.backend(1)}}
	if err := r.client.Apply(ctx, mine); err != nil {
		t.Fatal(err)
	}
	theirs := engine.RouteTable{Epoch: 6, Writer: "rollback-2", Backends: []engine.Backend{b.backend(7)}}
	if err := r.client.Apply(ctx, theirs); !errors.Is(err, engine.ErrStaleEpoch) {
		t.Fatalf("epoch 6 from another writer: %v, want ErrStaleEpoch", err)
	}
	mine.Backends[0].Weight = 2
	if err := r.client.Apply(ctx, mine); err != nil {
		t.Fatalf("the owner of epoch 6 re-applying: %v", err)
	}
	if got, _ := r.client.Table(ctx); got.Writer != "deploy-1" || got.Backends[0].Weight != 2 {
		t.Fatalf("table %+v, want deploy-1's second write", got)
	}
}

func TestBadTablesAreRefusedWithAClearMessageAndChangeNothing(t *testing.T) {
	r := startRouter(t, Options{})
	good := engine.Backend{ID: "ok", Addr: "127.0.0.1:8080", Version: "1", Weight: 1}
	r.apply(t, 1, good)
	cases := []struct {
		name     string
		backends []engine.Backend
		want     []string
	}{
		{"duplicate ids", []engine.Backend{good, {ID: "ok", Addr: "127.0.0.1:8081", Weight: 1}},
			[]string{`backend 1 "ok": duplicate id (also backend 0)`}},
		{"empty id", []engine.Backend{good, {Addr: "127.0.0.1:8081", Weight: 1}},
			[]string{"backend 1: empty id"}},
		{"negative weight", []engine.Backend{good, {ID: "neg", Addr: "127.0.0.1:8081", Weight: -3}},
			[]string{`backend 1 "neg": negative weight -3`}},
		{"weights sum to zero", []engine.Backend{{ID: "a", Addr: "127.0.0.1:1", Weight: 0}, {ID: "b", Addr: "127.0.0.1:2", Weight: 0}},
			[]string{"weights sum to 0 with 2 backends"}},
		{"no port", []engine.Backend{{ID: "np", Addr: "127.0.0.1", Weight: 1}},
			[]string{`backend 0 "np": address "127.0.0.1" is not host:port`}},
		{"named port", []engine.Backend{{ID: "named", Addr: "web:http", Weight: 1}},
			[]string{`backend 0 "named": address "web:http": port "http" is not a number`}},
		{"port out of range", []engine.Backend{{ID: "big", Addr: "web:70000", Weight: 1}},
			[]string{`port 70000 is out of range`}},
		{"no host", []engine.Backend{{ID: "nohost", Addr: ":8080", Weight: 1}},
			[]string{`backend 0 "nohost": address ":8080" has no host`}},
		{"several problems at once", []engine.Backend{{ID: "x", Addr: "bad", Weight: -1}, {ID: "x", Addr: "h:1", Weight: 1}},
			[]string{"negative weight -1", "is not host:port", "duplicate id"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := r.client.Apply(context.Background(), engine.RouteTable{Epoch: 2, Backends: tc.backends})
			var apiErr *APIError
			if !errors.Is(err, ErrInvalidTable) || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
				t.Fatalf("Apply = %v, want a 400 invalid table", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(apiErr.Message, w) {
					t.Errorf("message %q lacks %q", apiErr.Message, w)
				}
			}
			if got := r.srv.Table(); got.Epoch != 1 || !reflect.DeepEqual(got.Backends, []engine.Backend{good}) {
				t.Fatalf("refused table changed the router: %+v", got)
			}
		})
	}
}

func TestEmptyTableIsValid(t *testing.T) {
	r := startRouter(t, Options{})
	r.apply(t, 1)
	if got := r.srv.Table(); got.Epoch != 1 || got.Backends == nil || len(got.Backends) != 0 {
		t.Fatalf("table %+v, want epoch 1 with an empty backend list", got)
	}
}

func TestAdminErrorsAreJSON(t *testing.T) {
	r := startRouter(t, Options{})
	hc := unixHTTPClient(strings.TrimPrefix(r.admin, "unix:"))
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PUT", "/v1/table", `{"epoch": 1, "backends": [{"id": "a", "addr": "h:1", "wieght": 1}]}`, 400, `unknown field \"wieght\"`},
		{"PUT", "/v1/table", `{"epoch": `, 400, "decode table"},
		{"DELETE", "/v1/table", "", 405, "method DELETE not allowed on /v1/table"},
		{"GET", "/v2/nothing", "", 404, "no such endpoint: /v2/nothing"},
	} {
		req, _ := http.NewRequest(tc.method, "http://router"+tc.path, strings.NewReader(tc.body))
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var er struct{ Error string }
		if res.StatusCode != tc.code || json.Unmarshal(body, &er) != nil || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s: %d %s, want %d with JSON error containing %q", tc.method, tc.path, res.StatusCode, body, tc.code, tc.want)
		}
	}
	res, err := hc.Get("http://router/v1/health")
	if err != nil {
		t.Fatal(err)
	}
	var h HealthResponse
	json.NewDecoder(res.Body).Decode(&h)
	res.Body.Close()
	if h.Status != "ok" {
		t.Fatalf("health %+v", h)
	}
}

func unixHTTPClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
}

func TestTCPAdminRequiresTheBearerToken(t *testing.T) {
	s, err := New(Options{Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenAdmin("127.0.0.1:0", true)
	if err != nil {
		t.Fatal(err)
	}
	go s.ServeAdmin(l)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	addr := l.Addr().String()

	for _, token := range []string{"", "wrong"} {
		c, _ := Dial(addr, token)
		_, err := c.Table(context.Background())
		var apiErr *APIError
		if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token %q: %v, want 401", token, err)
		}
		err = c.Apply(context.Background(), engine.RouteTable{Epoch: 7})
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("apply with token %q: %v, want 401", token, err)
		}
	}
	if s.Table().Epoch != 0 {
		t.Fatal("unauthorized apply changed the table")
	}
	c, _ := Dial(addr, "s3cret")
	if err := c.Apply(context.Background(), engine.RouteTable{Epoch: 7}); err != nil {
		t.Fatalf("apply with the token: %v", err)
	}
}

func TestAdminListenerRefusesUnsafeAddresses(t *testing.T) {
	for _, tc := range []struct {
		addr      string
		haveToken bool
		want      string
	}{
		{"0.0.0.0:0", true, "is not loopback"},
		{":0", true, "is not loopback"},
		{"192.0.2.1:0", true, "is not loopback"},
		{"127.0.0.1:0", false, "token file is required"},
		{"unix:", false, "needs a socket path"},
		{"nonsense", false, "want unix:/path or 127.0.0.1:port"},
	} {
		l, err := ListenAdmin(tc.addr, tc.haveToken)
		if err == nil {
			l.Close()
			t.Fatalf("ListenAdmin(%q, token=%v) accepted", tc.addr, tc.haveToken)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ListenAdmin(%q): %v, want %q", tc.addr, err, tc.want)
		}
	}
}

func TestUnixAdminSocketIsPrivateAndReplacesAStaleOne(t *testing.T) {
	dir, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "admin.sock")
	l, err := ListenAdmin("unix:"+path, false)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("socket mode %o, want 600", perm)
	}
	if _, err := ListenAdmin("unix:"+path, false); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second listener on a live socket: %v, want refused", err)
	}
	// A router killed with SIGKILL leaves its socket file behind.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l2, err := ListenAdmin("unix:"+path, false)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

// A router still running a binary from before tables named their writer
// refuses the field; the client writes again without it rather than
// leaving the service with no way to move traffic until a restart.
func TestClientWritesToARouterThatPredatesTheWriterField(t *testing.T) {
	var bodies []string
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		if strings.Contains(string(b), `"writer"`) {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error": "decode table: json: unknown field \"writer\""}`)
			return
		}
		io.WriteString(w, string(b))
	}))
	defer old.Close()
	c, err := Dial(strings.TrimPrefix(old.URL, "http://"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Apply(context.Background(), engine.RouteTable{Epoch: 2, Writer: "rel-1", Backends: []engine.Backend{{ID: "a", Addr: "127.0.0.1:1", Version: "1", Weight: 1}}})
	if err != nil {
		t.Fatalf("apply to an old router: %v", err)
	}
	if len(bodies) != 2 || strings.Contains(bodies[1], "writer") {
		t.Errorf("requests %q: want a retry without the writer", bodies)
	}
}
