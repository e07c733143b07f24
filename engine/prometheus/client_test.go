package prometheus_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/prometheus"
	"github.com/cutover/cutover/engine/prometheus/promtest"
)

// answering is a server that answers every query with body (and status).
func answering(t *testing.T, status int, body string) *prometheus.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/prom/api/v1/query" || r.FormValue("query") == "" || r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "bad request to "+r.URL.Path, http.StatusTeapot)
			return
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := prometheus.New(prometheus.Config{URL: srv.URL + "/prom/", Token: "s3cret", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestQueryReadsOneValueAndCallsNothingElseAPass(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   float64
		err    string // substring; "no data" for ErrNoData
	}{
		{"vector of one", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"0.05"]}]}}`, 0.05, ""},
		{"scalar", 200, `{"status":"success","data":{"resultType":"scalar","result":[1.5,"3"]}}`, 3, ""},
		{"NaN", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"NaN"]}]}}`, math.NaN(), ""},
		{"empty vector", 200, `{"status":"success","data":{"resultType":"vector","result":[]}}`, 0, "no data"},
		{"several series", 200, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"version":"1.0.0"},"value":[1,"1"]},{"metric":{"version":"1.1.0"},"value":[1,"2"]}]}}`, 0, `2 series ({version="1.0.0"}, {version="1.1.0"})`},
		{"range vector", 200, `{"status":"success","data":{"resultType":"matrix","result":[]}}`, 0, "answered a matrix"},
		{"bad query", 400, `{"status":"error","errorType":"bad_data","error":"parse error at char 5"}`, 0, "bad_data: parse error at char 5 (400 Bad Request)"},
		{"not prometheus", 502, `<html>bad gateway</html>`, 0, "answered 502 Bad Gateway, not the query API's JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := answering(t, c.status, c.body).Query(context.Background(), "up")
			switch {
			case c.err == "no data":
				if !errors.Is(err, engine.ErrNoData) {
					t.Fatalf("err %v, want ErrNoData", err)
				}
			case c.err != "":
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
			case err != nil:
				t.Fatal(err)
			case math.IsNaN(c.want) != math.IsNaN(v) || !math.IsNaN(c.want) && v != c.want:
				t.Fatalf("value %v, want %v", v, c.want)
			}
		})
	}
}

func TestQueryGivesUpAtItsTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	c, _ := prometheus.New(prometheus.Config{URL: srv.URL, Timeout: 100 * time.Millisecond})
	_, err := c.Query(context.Background(), "up")
	if err == nil || !strings.Contains(err.Error(), "no answer within 100ms") {
		t.Fatalf("err %v", err)
	}
}

func TestNewRefusesWhatIsNotAnHTTPURL(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:9090", "ftp://x", "http://"} {
		if _, err := prometheus.New(prometheus.Config{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}

// Against a real Prometheus scraping a counter the test moves: the client
// reads what the server computed, an empty match is no data, 0/0 is NaN,
// and a query error comes back with the server's words.
func TestQueryAgainstARealPrometheus(t *testing.T) {
	var served atomic.Int64
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := served.Add(10)
		fmt.Fprintf(w, "# TYPE demo_requests_total counter\ndemo_requests_total{version=\"1.0.0\"} %d\ndemo_requests_total{version=\"1.1.0\"} %d\n", n*9, n)
	}))
	defer exporter.Close()
	prom := promtest.Start(t, promtest.Target{Job: "demo", Addr: strings.TrimPrefix(exporter.URL, "http://")})
	share := `sum(rate(demo_requests_total{version="1.1.0"}[10s])) / sum(rate(demo_requests_total[10s]))`
	if v := prom.WaitValue(t, share, 30*time.Second); math.Abs(v-0.1) > 1e-9 {
		t.Errorf("share %v, want 0.1", v)
	}
	c := prom.Client(t)
	ctx := context.Background()
	if _, err := c.Query(ctx, `demo_requests_total{version="9.9.9"}`); !errors.Is(err, engine.ErrNoData) {
		t.Errorf("no matching series: %v, want ErrNoData", err)
	}
	if v, err := c.Query(ctx, `sum(rate(demo_requests_total{version="9.9.9"}[10s])) / 0`); err == nil {
		t.Errorf("an empty sum divided: %v, want no data", v)
	}
	if v, err := c.Query(ctx, `scalar(vector(0)) / 0 * 0`); err != nil || !math.IsNaN(v) {
		t.Errorf("0/0: %v %v, want NaN", v, err)
	}
	if _, err := c.Query(ctx, `demo_requests_total`); err == nil || !strings.Contains(err.Error(), "2 series") {
		t.Errorf("two series: %v", err)
	}
	if _, err := c.Query(ctx, `sum(rate(demo_requests_total[10s]`); err == nil || !strings.Contains(err.Error(), "bad_data") {
		t.Errorf("syntax error: %v", err)
	}
}
