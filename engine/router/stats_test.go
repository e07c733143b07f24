package router

import (
	"context"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRingWindowCountsOnlyItsSeconds(t *testing.T) {
	var m meter
	base := time.Unix(1_700_000_000, 0)
	ok := outcome{status: 200, latency: 20 * time.Millisecond, hasLatency: true}
	// 5 requests a second for 70 seconds: the oldest 10 fall off the ring.
	for sec := range 70 {
		for range 5 {
			m.record(base.Add(time.Duration(sec)*time.Second), ok)
		}
	}
	m.record(base.Add(69*time.Second), outcome{status: 503, latency: 400 * time.Millisecond, hasLatency: true})
	m.record(base.Add(69*time.Second), outcome{proxyErr: true})

	now := base.Add(69*time.Second + 500*time.Millisecond)
	totals, ws := m.report(now, time.Hour)
	if totals.Requests != 352 || totals.Class2xx != 350 || totals.Class5xx != 1 || totals.ProxyErrors != 1 {
		t.Fatalf("totals %+v", totals)
	}
	w10 := ws["10s"]
	if w10.Requests != 52 || w10.Class2xx != 50 || w10.Class5xx != 1 || w10.ProxyErrors != 1 {
		t.Fatalf("10s window %+v, want the last 10 seconds only", w10)
	}
	// 52 requests over 9.5 elapsed seconds.
	if math.Abs(w10.RPS-52/9.5) > 1e-9 {
		t.Fatalf("10s rps %v, want %v", w10.RPS, 52/9.5)
	}
	if math.Abs(w10.ErrorRate-2.0/52) > 1e-9 {
		t.Fatalf("error rate %v, want 2/52", w10.ErrorRate)
	}
	if w1m := ws["1m"]; w1m.Requests != 302 || w1m.Seconds != 60 {
		t.Fatalf("1m window %+v, want 60 seconds = 302 requests", w1m)
	}
	if w10.P50Ms <= 10 || w10.P50Ms > 25 || w10.P99Ms <= 250 || w10.P99Ms > 500 {
		t.Fatalf("percentiles p50 %v p99 %v, want p50 in (10,25] and p99 in (250,500]", w10.P50Ms, w10.P99Ms)
	}
	// A sample from a second the ring has moved past is dropped, not misfiled.
	m.record(base.Add(5*time.Second), ok)
	if _, ws := m.report(now, time.Hour); ws["10s"].Requests != 52 {
		t.Fatalf("late sample landed in the window: %+v", ws["10s"])
	}
}

func TestYoungRouterRatesUseItsUptime(t *testing.T) {
	var m meter
	now := time.Unix(1_700_000_000, 0).Add(900 * time.Millisecond)
	for range 10 {
		m.record(now, outcome{status: 200})
	}
	_, ws := m.report(now, 2*time.Second)
	if ws["1m"].RPS != 5 {
		t.Fatalf("1m rps %v after 2s of uptime with 10 requests, want 5", ws["1m"].RPS)
	}
}

func TestHistogramIsCumulativeWithFixedBounds(t *testing.T) {
	var m meter
	now := time.Unix(1_700_000_000, 0)
	for _, ms := range []int{1, 3, 3, 70, 90000} {
		m.record(now, outcome{status: 200, latency: time.Duration(ms) * time.Millisecond, hasLatency: true})
	}
	totals, _ := m.report(now, time.Hour)
	h := totals.Latency
	if len(h.Counts) != len(h.BoundsMs)+1 || h.BoundsMs[0] != 1 {
		t.Fatalf("histogram shape %+v", h)
	}
	want := map[float64]int64{1: 1, 2.5: 1, 5: 3, 50: 3, 100: 4, 60000: 4}
	for i, b := range h.BoundsMs {
		if n, ok := want[b]; ok && h.Counts[i] != n {
			t.Errorf("count <= %vms = %d, want %d", b, h.Counts[i], n)
		}
	}
	if h.Counts[len(h.Counts)-1] != 5 || h.SumMs != 90077 {
		t.Fatalf("+Inf count %d sum %v, want 5 and 90077", h.Counts[len(h.Counts)-1], h.SumMs)
	}
}

func TestStatsAndMetricsAfterLoad(t *testing.T) {
	a, b := startBackend(t, "web-a", "1.0"), startBackend(t, "web-b", "1.1")
	r := startRouter(t, Options{})
	r.apply(t, 4, a.backend(3), b.backend(1))
	c := newTestClient(2)
	for range 200 {
		res, err := c.Get(r.url + "/slow?ms=1")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	res, err := http.Get(r.url + "/missing-is-fine") // still a 200 from the test backend
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	// The client can see a response end a moment before the router counts it.
	if err := r.client.WaitDrained(context.Background(), []string{"web-a", "web-b"}); err != nil {
		t.Fatal(err)
	}
	st := statsOf(t, r)
	if st.Epoch != 4 {
		t.Fatalf("stats epoch %d", st.Epoch)
	}
	v10, ok := st.Version("1.0")
	if !ok {
		t.Fatal("no stats for version 1.0")
	}
	w := v10.Windows["10s"]
	if w.Requests < 150 || w.RPS <= 0 || w.P50Ms <= 1 || w.P95Ms < w.P50Ms || w.P99Ms < w.P95Ms || w.ErrorRate != 0 {
		t.Fatalf("version 1.0 10s window %+v, want traffic with rps and ordered percentiles", w)
	}
	if v10.Totals.Class2xx != v10.Totals.Requests {
		t.Fatalf("totals %+v", v10.Totals)
	}
	bs, _ := backendStatsOf(st, "web-b")
	if bs.Weight != 1 || bs.Version != "1.1" || bs.Totals.Requests == 0 || bs.Windows["1m"].Requests != bs.Totals.Requests {
		t.Fatalf("web-b stats %+v", bs)
	}

	m, err := r.client.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# TYPE cutover_router_backend_requests_total counter",
		`cutover_router_backend_requests_total{backend="web-a",version="1.0",class="2xx"} ` + itoa(a.served.Load()),
		`cutover_router_backend_requests_total{backend="web-a",version="1.0",class="proxy_error"} 0`,
		"# TYPE cutover_router_backend_in_flight gauge",
		`cutover_router_backend_in_flight{backend="web-b",version="1.1"} 0`,
		`cutover_router_backend_weight{backend="web-a",version="1.0"} 3`,
		"# TYPE cutover_router_version_request_duration_seconds histogram",
		`cutover_router_version_request_duration_seconds_bucket{version="1.1",le="0.001"} `,
		`cutover_router_version_request_duration_seconds_bucket{version="1.1",le="+Inf"} ` + itoa(b.served.Load()),
		`cutover_router_version_request_duration_seconds_sum{version="1.1"} `,
		`cutover_router_version_request_duration_seconds_count{version="1.1"} ` + itoa(b.served.Load()),
		`cutover_router_version_requests_total{version="1.1",class="5xx"} 0`,
		`cutover_router_backend_retries_total{backend="web-a",version="1.0"} 0`,
		"cutover_router_table_epoch 4",
		"cutover_router_no_backend_total 0",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(m)
	}
}

func TestVersionFiguresSurviveItsBackendsLeavingTheTable(t *testing.T) {
	old, next := startBackend(t, "old", "1.0"), startBackend(t, "new", "1.1")
	r := startRouter(t, Options{})
	r.apply(t, 1, old.backend(1))
	c := newTestClient(1)
	for range 7 {
		get(t, c, r.url+"/")
	}
	if err := r.client.WaitDrained(context.Background(), []string{"old"}); err != nil {
		t.Fatal(err)
	}
	r.apply(t, 2, next.backend(1))
	st := statsOf(t, r)
	if _, ok := backendStatsOf(st, "old"); ok {
		t.Fatal("removed idle backend still listed")
	}
	v, ok := st.Version("1.0")
	if !ok || v.Totals.Requests != 7 || v.Windows["1m"].Requests != 7 {
		t.Fatalf("version 1.0 after its backend left: %+v (found %v)", v, ok)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
