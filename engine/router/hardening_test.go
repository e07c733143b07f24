package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cutover/cutover/engine"
)

// A writer fences the others out by applying the epoch it read plus one: at
// the top of uint64 that addition wraps to 0 and every later write would be
// stale forever, so the router refuses epochs above engine.MaxEpoch, which
// leaves writers all the room they need.
func TestEpochAWriterCannotIncrementIsRefused(t *testing.T) {
	r := startRouter(t, Options{})
	r.apply(t, 7)
	err := r.client.Apply(context.Background(), engine.RouteTable{Epoch: math.MaxUint64, Backends: []engine.Backend{}})
	var apiErr *APIError
	if !errors.Is(err, ErrInvalidTable) || !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "18446744073709551615") {
		t.Fatalf("Apply(epoch 2^64-1) = %v, want a 400 naming the epoch", err)
	}
	if got := r.srv.Table().Epoch; got != 7 {
		t.Fatalf("epoch %d after a refused table, want 7", got)
	}
	err = r.client.Apply(context.Background(), engine.RouteTable{Epoch: engine.MaxEpoch + 1, Backends: []engine.Backend{}})
	if !errors.Is(err, ErrInvalidTable) {
		t.Fatalf("Apply(MaxEpoch+1) = %v, want refused", err)
	}
	r.apply(t, engine.MaxEpoch) // the last epoch a writer may claim

	// A state file holding such an epoch is refused at start too.
	state := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(state, []byte(`{"epoch": 18446744073709551615, "backends": []}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{StatePath: state}); err == nil || !strings.Contains(err.Error(), "18446744073709551615") {
		t.Fatalf("New with epoch 2^64-1 in the state file: %v, want refused", err)
	}
}

// The socket must never be reachable by others, not even between its
// creation and a chmod: a watcher polling the path while the listener is
// made must only ever see mode 0600.
func TestUnixAdminSocketIsPrivateFromItsCreation(t *testing.T) {
	dir, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "admin.sock")
	for i := range 300 {
		var stop atomic.Bool
		var seen atomic.Uint32 // a mode other than 0600, plus 1<<12 so 0 means none
		var wg sync.WaitGroup
		wg.Go(func() {
			for !stop.Load() {
				if fi, err := os.Lstat(path); err == nil && fi.Mode().Perm() != 0o600 {
					seen.Store(uint32(fi.Mode().Perm()) | 1<<12)
					return
				}
			}
		})
		l, err := ListenAdmin("unix:"+path, false)
		stop.Store(true)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if m := seen.Load(); m != 0 {
			t.Fatalf("attempt %d: the socket existed with mode %o before it was made private", i, m&0o777)
		}
	}
}

// Only a socket that no process answers on is stale; any other file at the
// admin path is the operator's and is left alone.
func TestAdminSocketPathHoldingAnotherFileIsLeftAlone(t *testing.T) {
	dir, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty-dir")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, empty, link} {
		l, err := ListenAdmin("unix:"+path, false)
		if err == nil {
			l.Close()
			t.Fatalf("ListenAdmin over %s accepted", path)
		}
		if !strings.Contains(err.Error(), "not a socket") {
			t.Errorf("ListenAdmin over %s: %v, want it to say the path is not a socket", path, err)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("%s was removed: %v", path, err)
		}
	}
	if data, _ := os.ReadFile(file); string(data) != "keep me" {
		t.Fatalf("file content %q after a refused listen", data)
	}
}

// A token file others can read leaks the key to routing, as an ssh private
// key would: it is refused, with the mode and the fix in the message.
func TestTokenFileReadableByOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		mode os.FileMode
		want string // "" means accepted
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, "readable or writable by group or others (mode 0640)"},
		{0o604, "mode 0604"},
		{0o620, "mode 0620"},
	} {
		path := filepath.Join(dir, "token-"+tc.mode.String())
		if err := os.WriteFile(path, []byte("  tok-1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tc.mode); err != nil {
			t.Fatal(err)
		}
		tok, err := ReadTokenFile(path)
		switch {
		case tc.want == "" && (err != nil || tok != "tok-1"):
			t.Errorf("mode %o: %q, %v; want tok-1", tc.mode, tok, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "chmod 600 "+path)):
			t.Errorf("mode %o: %q, %v; want refused with %q and the chmod fix", tc.mode, tok, err, tc.want)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	if _, err := ReadTokenFile(empty); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty token file: %v, want refused", err)
	}
	if _, err := ReadTokenFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing token file: %v, want an error naming it", err)
	}
}

// putTable sends body as PUT /v1/table to s's admin handler.
func putTable(s *Server, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPut, "/v1/table", bytes.NewReader(body))
	rec := httptest.NewRecorder()
	s.AdminHandler().ServeHTTP(rec, req)
	return rec
}

func TestOversizedTableBodyIsRefusedWith413(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	before := s.Table()
	// A valid table whose padding pushes it past the limit.
	body := []byte(`{"epoch": 3, "writer": "` + strings.Repeat("w", maxTableBody) + `", "backends": []}`)
	rec := putTable(s, body)
	var er errorResponse
	if rec.Code != http.StatusRequestEntityTooLarge || json.Unmarshal(rec.Body.Bytes(), &er) != nil ||
		!strings.Contains(er.Error, "larger than 4194304 bytes") {
		t.Fatalf("PUT of %d bytes: %d %s, want 413 naming the limit", len(body), rec.Code, rec.Body.String())
	}
	if !reflect.DeepEqual(s.Table(), before) {
		t.Fatalf("an oversized table changed the router: %+v", s.Table())
	}
	// Just under the limit is decoded as usual.
	body = []byte(`{"epoch": 3, "writer": "` + strings.Repeat("w", maxTableBody-64) + `", "backends": []}`)
	if rec := putTable(s, body); rec.Code != http.StatusOK {
		t.Fatalf("PUT of %d bytes: %d %.200s, want 200", len(body), rec.Code, rec.Body.String())
	}
}

// FuzzAdminPutTable feeds the admin decoder arbitrary bodies. Whatever it
// gets, it answers JSON; on 200 the router holds exactly the decoded table,
// and on any refusal the table is unchanged.
func FuzzAdminPutTable(f *testing.F) {
	for _, seed := range []string{
		`{"epoch": 2, "backends": [{"id": "a", "addr": "127.0.0.1:8080", "version": "1", "weight": 1}]}`,
		`{"epoch": 2, "writer": "w", "backends": []}`,
		`{"epoch": 18446744073709551615, "backends": []}`,
		`{"epoch": 18446744073709551616}`,
		`{"epoch": -1}`,
		`{"epoch": 2, "backends": [{"id": "a", "addr": "h:1", "weight": 1}, {"id": "a", "addr": "h:2", "weight": 1}]}`,
		`{"epoch": 2} {"epoch": 3}`,
		`{"epoch": 2, "backends": null}`,
		`{"epoch": 1e3}`,
		`[]`, `null`, ``, `{`, "\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.install(engine.RouteTable{Epoch: 1, Backends: []engine.Backend{{ID: "seed", Addr: "127.0.0.1:1", Version: "1", Weight: 1}}})
		before := s.Table()
		rec := putTable(s, body)
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer %d %q is not JSON (%s)", rec.Code, rec.Body.String(), ct)
		}
		after := s.Table()
		switch {
		case rec.Code == http.StatusOK:
			var got engine.RouteTable
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || !reflect.DeepEqual(got, after) {
				t.Fatalf("200 answered %s but the router holds %+v", rec.Body.String(), after)
			}
			if after.Epoch < before.Epoch || after.Epoch > engine.MaxEpoch || validateTable(after) != nil {
				t.Fatalf("accepted a table it should refuse: %+v", after)
			}
		case rec.Code/100 == 4:
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("refused with %d but the table changed to %+v", rec.Code, after)
			}
		default:
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}
