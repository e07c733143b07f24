package demotest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// LoadRate is the request rate StartLoad paces itself to, per second.
const LoadRate = 250

// loadWorkers must cover the slow requests in flight at LoadRate (a fifth
// of them, 300ms each) with room to spare.
const loadWorkers = 48

// Load is steady traffic through a router to demo instances, for proving
// that a release loses no request. Of every ten requests, three are POSTs
// with a 4 KiB body (one of them slow), one is a slow GET (300 ms) and six
// are GETs. POSTs matter: Go's client silently retries idempotent requests on
// a reset connection, which would hide drops; slow requests are in flight
// whenever an instance is drained or stopped.
//
// Every connection error and every non-2xx answer counts as lost, except
// a 500 from a demo version that answers errors on purpose (it names its
// version), which is counted apart.
type Load struct {
	url   string
	start time.Time

	mu        sync.Mutex
	total     int
	byVersion map[string]int
	on500     map[string]int // deliberate 500s, by version
	failures  []string
	end       time.Time

	stop chan struct{}
	wg   sync.WaitGroup
}

// StartLoad sends LoadRate requests a second to url until the test ends
// or Finish is called.
func StartLoad(t testing.TB, url string) *Load {
	l := &Load{url: url, byVersion: map[string]int{}, on500: map[string]int{}, stop: make(chan struct{}), start: time.Now()}
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: loadWorkers, Proxy: nil}}
	body := strings.Repeat("x", 4096)
	next := make(chan int)
	l.wg.Go(func() {
		defer close(next)
		tick := time.NewTicker(time.Second / LoadRate)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			select {
			case next <- i:
			case <-l.stop:
				return
			}
		}
	})
	for range loadWorkers {
		l.wg.Go(func() {
			for i := range next {
				var req *http.Request
				switch i % 10 {
				case 0, 1:
					req, _ = http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				case 2:
					req, _ = http.NewRequest(http.MethodPost, url+"?sleep=300ms", strings.NewReader(body))
				case 3:
					req, _ = http.NewRequest(http.MethodGet, url+"?sleep=300ms", nil)
				default:
					req, _ = http.NewRequest(http.MethodGet, url, nil)
				}
				l.record(req, client)
			}
		})
	}
	t.Cleanup(l.Finish)
	return l
}

func (l *Load) record(req *http.Request, client *http.Client) {
	resp, err := client.Do(req)
	var status int
	var version string
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		status, version = resp.StatusCode, resp.Header.Get("X-Demo-Version")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	switch {
	case err != nil:
		l.failures = append(l.failures, fmt.Sprintf("%s %s: %v", req.Method, req.URL.RequestURI(), err))
	case status == http.StatusInternalServerError && version != "":
		l.on500[version]++
		l.byVersion[version]++
	case status/100 != 2:
		l.failures = append(l.failures, fmt.Sprintf("%s %s: %d", req.Method, req.URL.RequestURI(), status))
	default:
		l.byVersion[version]++
	}
}

// Finish stops the load and waits for the requests in flight.
func (l *Load) Finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	if l.end.IsZero() {
		l.end = time.Now()
	}
	l.mu.Unlock()
}

// Rate is the requests answered per second so far (until Finish).
func (l *Load) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	end := l.end
	if end.IsZero() {
		end = time.Now()
	}
	return float64(l.total) / end.Sub(l.start).Seconds()
}

// AssertNoFailures stops the load and fails the test on any request lost,
// or when too few were sent to prove anything.
func (l *Load) AssertNoFailures(t testing.TB) {
	t.Helper()
	l.Finish()
	rate := l.Rate()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load: %d requests at %.0f/s, by version %v, deliberate 500s %v", l.total, rate, l.byVersion, l.on500)
	if l.total < 50 {
		t.Errorf("load sent only %d requests; the test proves nothing", l.total)
	}
	if len(l.failures) > 0 {
		n := min(len(l.failures), 10)
		t.Errorf("%d of %d requests lost, first %d:\n%s", len(l.failures), l.total, n, strings.Join(l.failures[:n], "\n"))
	}
}

// Served is how many requests version has answered.
func (l *Load) Served(version string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byVersion[version]
}

// WaitServed waits until version has answered n requests of the load.
func (l *Load) WaitServed(t testing.TB, version string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.Served(version) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s answered %d requests in 30s, want %d", version, l.Served(version), n)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable: requests being answered
	}
}
