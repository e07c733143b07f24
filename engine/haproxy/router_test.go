package haproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/haproxy"
	"github.com/cutover/cutover/engine/haproxy/haproxytest"
)

// backend is an HTTP server HAProxy can send to: it answers its name,
// with ?status=N that status and with ?sleep=D after D.
func backend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
			time.Sleep(d)
		}
		if s := r.URL.Query().Get("status"); s != "" {
			var code int
			fmt.Sscan(s, &code)
			w.WriteHeader(code)
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// get sends one request through HAProxy and returns the status and the
// name of the backend that answered.
func get(t *testing.T, h *haproxytest.HAProxy, query string) (int, string) {
	t.Helper()
	res, err := http.Get(h.URL() + query)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// slowRequest sends a request that takes d through HAProxy and returns
// once backend id has it in flight; the channel then gets its status (0
// if it failed).
func slowRequest(t *testing.T, h *haproxytest.HAProxy, r engine.Router, id string, d time.Duration) <-chan int {
	t.Helper()
	done := make(chan int, 1)
	go func() {
		res, err := http.Get(h.URL() + "?sleep=" + d.String())
		if err != nil {
			done <- 0
			return
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		done <- res.StatusCode
	}()
	for {
		_, st := state(t, r)
		for _, b := range st.Backends {
			if b.ID == id && b.InFlight == 1 {
				return done
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func apply(t *testing.T, r engine.Router, tab engine.RouteTable) {
	t.Helper()
	if err := r.Apply(context.Background(), tab); err != nil {
		t.Fatal(err)
	}
}

func state(t *testing.T, r engine.Router) (engine.RouteTable, engine.Stats) {
	t.Helper()
	tab, st, err := r.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return tab, st
}

// HAProxy takes the table as servers with weights scaled to its 0..256,
// sends traffic in those proportions, and the adapter reads the engine's
// own weights back.
func TestApplyBecomesServersAndTrafficAndIsReadBack(t *testing.T) {
	h := haproxytest.Start(t)
	r := h.Router(t)
	a, b := backend(t, "a"), backend(t, "b")
	apply(t, r, engine.RouteTable{Epoch: 3, Writer: "w", Backends: []engine.Backend{
		{ID: "a", Addr: a, Version: "1.0.0", Weight: 2500},
		{ID: "b", Addr: b, Version: "1.1.0", Weight: 7500},
	}})
	servers := h.Servers()
	if servers["a"] != a+" w85 a4" || servers["b"] != b+" w256 a4" {
		t.Errorf("HAProxy servers %v, want a at weight 85 and b at 256, both ready", servers)
	}
	got := map[string]int{}
	for range 341 { // one round of HAProxy's weighted round robin: 85 + 256
		code, name := get(t, h, "")
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		got[name]++
	}
	if got["a"] < 80 || got["a"] > 90 {
		t.Errorf("a answered %d of 341 requests, want about 85 (25%%)", got["a"])
	}
	tab, st := state(t, r)
	if tab.Epoch != 3 || tab.Writer != "w" || tab.Share("1.0.0") != 0.25 {
		t.Errorf("read back %+v, want epoch 3 of w with 1.0.0 at 25%%", tab)
	}
	if v, _ := st.Version("1.0.0"); v.Totals.Requests != int64(got["a"]) || v.Totals.Class2xx != int64(got["a"]) {
		t.Errorf("1.0.0 totals %+v, want %d requests, all 2xx", v.Totals, got["a"])
	}
	if st.Started.IsZero() || st.Epoch != 3 {
		t.Errorf("stats started %v epoch %d", st.Started, st.Epoch)
	}
}

// A change made behind cutover's back is not read back as cutover's
// table: State fails naming it, and Restore puts the table back.
func TestServersChangedByHandAreReportedAndRestored(t *testing.T) {
	h := haproxytest.Start(t)
	r := h.Router(t)
	a, b := backend(t, "a"), backend(t, "b")
	want := engine.RouteTable{Epoch: 1, Writer: "w", Backends: []engine.Backend{
		{ID: "a", Addr: a, Version: "1.0.0", Weight: 5000}, {ID: "b", Addr: b, Version: "1.0.0", Weight: 5000}}}
	apply(t, r, want)
	h.Command("set weight be/a 3")
	_, _, err := r.State(context.Background())
	var drift *haproxy.DriftError
	if !errors.As(err, &drift) || !strings.Contains(err.Error(), "server a has weight 3") {
		t.Fatalf("State after a hand change: %v, want a DriftError naming server a", err)
	}
	what, err := r.Restore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(what)
	tab, _ := state(t, r)
	if tab.Epoch != 1 || len(tab.Backends) != 2 {
		t.Errorf("after restore %+v", tab)
	}
	if _, err := r.Restore(context.Background()); !errors.Is(err, haproxy.ErrNothingToRestore) {
		t.Errorf("second restore: %v, want nothing to restore", err)
	}
}

// An address HAProxy refuses fails the apply with HAProxy's own message,
// and nothing changes: not the servers, not their weights, not the epoch,
// not the traffic.
func TestRefusedAddressFailsWithHAProxysMessageAndChangesNothing(t *testing.T) {
	h := haproxytest.Start(t)
	r := h.Router(t)
	a, b := backend(t, "a"), backend(t, "b")
	cur := engine.RouteTable{Epoch: 2, Writer: "w", Backends: []engine.Backend{{ID: "a", Addr: a, Version: "1.0.0", Weight: 10000}}}
	apply(t, r, cur)
	before := h.Servers()
	for addr, says := range map[string]string{
		"web..internal:8080": "Can't create DNS resolution",           // HAProxy refuses it outright
		"localhost:8080":     "does not resolve the names of servers", // HAProxy takes it as a name it never resolves: the read-back refuses
	} {
		err := r.Apply(context.Background(), engine.RouteTable{Epoch: 3, Writer: "w2", Backends: []engine.Backend{
			{ID: "a", Addr: a, Version: "1.0.0", Weight: 0},
			{ID: "b", Addr: b, Version: "1.1.0", Weight: 5000},
			{ID: "c", Addr: addr, Version: "1.1.0", Weight: 5000},
		}})
		if !errors.Is(err, engine.ErrInvalidTable) || !strings.Contains(err.Error(), says) {
			t.Errorf("apply with %s: %v, want a refusal saying %q", addr, err, says)
		}
		t.Log(err)
		if after := h.Servers(); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("servers after the refusal %v, want unchanged %v", after, before)
		}
		tab, _ := state(t, r)
		if tab.Epoch != 2 || tab.Writer != "w" || tab.Share("1.0.0") != 1 {
			t.Errorf("table after the refusal %+v, want epoch 2 unchanged", tab)
		}
		if _, name := get(t, h, ""); name != "a" {
			t.Errorf("traffic went to %q after the refusal", name)
		}
	}
}

// HAProxy forgets runtime changes when it restarts: the next read fails
// saying so (a release pauses on it rather than writing on top of
// HAProxy's config), an apply is refused too, and Restore applies the
// last table again with its epoch and writer, so the writer goes on.
func TestRestartIsDetectedAndRestoreBringsTheTableBack(t *testing.T) {
	h := haproxytest.Start(t)
	r := h.Router(t)
	a := backend(t, "a")
	tab := engine.RouteTable{Epoch: 7, Writer: "rel-1", Backends: []engine.Backend{{ID: "a", Addr: a, Version: "1.0.0", Weight: 10000}}}
	apply(t, r, tab)
	h.Restart()
	var restarted *haproxy.RestartedError
	if _, _, err := r.State(context.Background()); !errors.As(err, &restarted) || restarted.Epoch != 7 {
		t.Fatalf("State after a restart: %v, want a RestartedError for epoch 7", err)
	}
	t.Log(restarted)
	next := tab
	next.Epoch = 8
	if err := r.Apply(context.Background(), next); !errors.As(err, &restarted) {
		t.Fatalf("Apply after a restart: %v, want a RestartedError", err)
	}
	if s := h.Servers(); len(s) != 0 {
		t.Errorf("the refused apply added servers: %v", s)
	}
	// Another process of this host (a second Router on the same ledger)
	// sees the restart too.
	if _, _, err := h.Router(t).State(context.Background()); !errors.As(err, &restarted) {
		t.Errorf("a second process's State: %v, want a RestartedError", err)
	}
	if _, err := r.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := state(t, r)
	if got.Epoch != 7 || got.Writer != "rel-1" || len(got.Backends) != 1 {
		t.Errorf("after restore %+v, want the table of epoch 7 by rel-1", got)
	}
	if code, name := get(t, h, ""); code != 200 || name != "a" {
		t.Errorf("after restore: %d from %q", code, name)
	}
	apply(t, r, next) // the writer of epoch 7 goes on
}

// Drain is HAProxy's sessions: a backend at weight 0 with a slow request
// in flight is not drained until that request ends, and the request ends
// well.
func TestWaitDrainedWaitsForTheRequestInFlight(t *testing.T) {
	h := haproxytest.Start(t)
	r := h.Router(t)
	a, b := backend(t, "a"), backend(t, "b")
	apply(t, r, engine.RouteTable{Epoch: 1, Backends: []engine.Backend{{ID: "a", Addr: a, Version: "1.0.0", Weight: 10000}}})
	done := slowRequest(t, h, r, "a", time.Second)
	ctx := context.Background()
	apply(t, r, engine.RouteTable{Epoch: 1, Backends: []engine.Backend{
		{ID: "a", Addr: a, Version: "1.0.0", Weight: 0}, {ID: "b", Addr: b, Version: "1.1.0", Weight: 10000}}})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := r.WaitDrained(short, []string{"a"})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "a (1 in flight)") {
		t.Errorf("WaitDrained with a request in flight: %v, want still busy", err)
	}
	if err := r.WaitDrained(ctx, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 200 {
			t.Errorf("the request in flight ended %d", code)
		}
	default:
		t.Error("drained while the request was still in flight")
	}
}

// A version's totals are HAProxy's counters of its servers, and stay when
// a server leaves the table (HAProxy deletes it with its counters; the
// adapter keeps them in the map).
func TestVersionTotalsCountResponsesAndOutliveTheirServers(t *testing.T) {
	h := haproxytest.Start(t)
	r := h.Router(t)
	a, b := backend(t, "a"), backend(t, "b")
	apply(t, r, engine.RouteTable{Epoch: 1, Backends: []engine.Backend{
		{ID: "a", Addr: a, Version: "1.0.0", Weight: 5000}, {ID: "b", Addr: b, Version: "1.1.0", Weight: 5000}}})
	sent := map[string]map[int]int{"a": {}, "b": {}}
	for i := range 40 {
		status := []int{200, 404, 500, 302}[i%4]
		code, name := get(t, h, fmt.Sprintf("?status=%d", status))
		sent[name][code]++
	}
	check := func(when string) {
		t.Helper()
		_, st := state(t, r)
		v, _ := st.Version("1.1.0")
		n := sent["b"]
		want := engine.Totals{Requests: int64(n[200] + n[404] + n[500] + n[302]), Class2xx: int64(n[200]), Class3xx: int64(n[302]), Class4xx: int64(n[404]), Class5xx: int64(n[500])}
		if v.Totals.Requests != want.Requests || v.Totals.Class2xx != want.Class2xx || v.Totals.Class3xx != want.Class3xx ||
			v.Totals.Class4xx != want.Class4xx || v.Totals.Class5xx != want.Class5xx {
			t.Errorf("%s: 1.1.0 totals %+v, want %+v", when, v.Totals, want)
		}
	}
	check("in the table")
	apply(t, r, engine.RouteTable{Epoch: 1, Backends: []engine.Backend{{ID: "a", Addr: a, Version: "1.0.0", Weight: 10000}}})
	if _, ok := h.Servers()["b"]; ok {
		t.Fatal("b is still a server of HAProxy")
	}
	check("after its server was deleted")
}

// Two cutover processes of one host applying at once never interleave:
// for each epoch, exactly one writer gets it and the other is fenced out.
func TestTwoWritersOfOneHostNeverInterleave(t *testing.T) {
	h := haproxytest.Start(t)
	one, two := h.Router(t), h.Router(t)
	a, b := backend(t, "a"), backend(t, "b")
	for epoch := uint64(1); epoch <= 10; epoch++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, r := range []*haproxy.Router{one, two} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = r.Apply(context.Background(), engine.RouteTable{Epoch: epoch, Writer: fmt.Sprintf("w%d", i), Backends: []engine.Backend{
					{ID: "a", Addr: a, Version: "1.0.0", Weight: 1 + i}, {ID: fmt.Sprintf("b%d", i), Addr: b, Version: "1.0.0", Weight: 1}}})
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, engine.ErrStaleEpoch):
				t.Fatalf("epoch %d writer %d: %v", epoch, i, err)
			}
		}
		if won != 1 {
			t.Fatalf("epoch %d: %d writers won, want exactly 1 (%v)", epoch, won, errs)
		}
		state(t, one) // reads back clean: no mix of the two tables
	}
}

func TestServerWeightsKeepSharesWithin256(t *testing.T) {
	for _, c := range []struct {
		weights []int
		want    []int
	}{
		{[]int{2500, 7500}, []int{85, 256}},
		{[]int{100, 2475, 2475, 2475, 2475}, []int{10, 256, 256, 256, 256}},
		{[]int{1, 9999}, []int{1, 256}}, // a weight above 0 never rounds to 0
		{[]int{0, 10000}, []int{0, 256}},
		{[]int{3, 3}, []int{256, 256}},
	} {
		var tab engine.RouteTable
		for i, w := range c.weights {
			tab.Backends = append(tab.Backends, engine.Backend{ID: fmt.Sprint(i), Addr: "127.0.0.1:1", Weight: w})
		}
		got := haproxy.ServerWeights(tab)
		for i, w := range c.want {
			if got[fmt.Sprint(i)] != w {
				t.Errorf("weights %v: HAProxy weights %v, want %v", c.weights, got, c.want)
				break
			}
		}
	}
}

// A backend that leaves the table with a request still in flight (the
// drain timed out) keeps serving that request; HAProxy cannot delete it
// yet, so it waits in maintenance and the next apply deletes it, its
// counters kept for its version.
func TestServerLeavingWithARequestInFlightFinishesItAndGoesLater(t *testing.T) {
	h := haproxytest.Start(t)
	r := h.Router(t)
	a, b := backend(t, "a"), backend(t, "b")
	apply(t, r, engine.RouteTable{Epoch: 1, Backends: []engine.Backend{{ID: "a", Addr: a, Version: "1.0.0", Weight: 10000}}})
	done := slowRequest(t, h, r, "a", 500*time.Millisecond)
	only := engine.RouteTable{Epoch: 1, Backends: []engine.Backend{{ID: "b", Addr: b, Version: "1.1.0", Weight: 10000}}}
	apply(t, r, only)
	if s := h.Servers()["a"]; !strings.HasSuffix(s, " a5") && !strings.HasSuffix(s, " a1") {
		t.Errorf("server a with a request in flight: %q, want it kept in maintenance", s)
	}
	tab, st := state(t, r)
	if len(tab.Backends) != 1 || tab.Backends[0].ID != "b" {
		t.Errorf("table %+v, want b alone", tab)
	}
	if v, _ := st.Version("1.0.0"); v.InFlight != 1 {
		t.Errorf("1.0.0 in flight %d, want the request still counted", v.InFlight)
	}
	if code := <-done; code != 200 {
		t.Errorf("the request in flight ended %d", code)
	}
	apply(t, r, only)
	if _, ok := h.Servers()["a"]; ok {
		t.Error("the next apply did not delete server a")
	}
	if _, st := state(t, r); func() int64 { v, _ := st.Version("1.0.0"); return v.Totals.Class2xx }() != 1 {
		t.Errorf("1.0.0 totals lost the request of its deleted server: %+v", st.Versions)
	}
}
