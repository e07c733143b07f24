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

// LoadSpec says what a Load sends and how it judges the answers. Of every
// ten requests, three are POSTs with a body (one of them slow) and two are
// slow, so a dropped request cannot hide: Go's client retries an idempotent
// request on a reset connection, never a POST.
type LoadSpec struct {
	Rate int    // requests per second, whatever the answers take; default DefaultRate
	Get  string // URL of the plain GETs
	Post string // URL the POSTs send their body to
	Slow string // URL of the slow requests (about 300 ms), GET and POST
	// CountBy is the response header naming who answered: answers are
	// counted by its value (a version, a backend).
	CountBy string
	// Excuse500 lists values of CountBy whose 500s are deliberate (a demo
	// version that errors on purpose): counted apart, not as failures.
	// Every other 500 fails, as does every connection error and non-2xx.
	Excuse500 []string
	// CheckPost judges the body of a POST's 2xx answer, given what was
	// sent; nil accepts any body.
	CheckPost func(sent string, answer []byte) error
}

// DefaultRate is the load's rate when the spec gives none: above the 200
// requests per second the release proofs ask for.
const DefaultRate = 250

// loadConcurrency caps the requests in flight: past it the schedule waits,
// and the achieved rate (Rate) shows it.
const loadConcurrency = 512

// Load is an open-loop HTTP load: requests leave on a fixed schedule,
// however long the answers take, so a stalled backend cannot slow the load
// down and hide its own failures. It runs until Stop (or the test's end).
type Load struct {
	spec   LoadSpec
	client *http.Client
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	start  time.Time

	mu       sync.Mutex
	sent     int // requests sent, answered or not
	answered int
	ok       int
	byKey    map[string]int // 2xx answers by CountBy
	excused  map[string]int // deliberate 500s by CountBy
	failed   int
	failures []string // the first few
	end      time.Time
}

// StartLoad starts spec's load; it stops when the test ends.
func StartLoad(t testing.TB, spec LoadSpec) *Load {
	t.Helper()
	if spec.Rate <= 0 {
		spec.Rate = DefaultRate
	}
	l := &Load{spec: spec, stop: make(chan struct{}), byKey: map[string]int{}, excused: map[string]int{},
		client: &http.Client{Timeout: 15 * time.Second,
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}}
	l.start = time.Now()
	l.wg.Add(1)
	go l.schedule()
	t.Cleanup(l.Stop)
	return l
}

// StartAppLoad loads the demo app (through a router at url): its answers
// carry X-Demo-Version, ?sleep=300ms slows one down, and a POST's answer
// says how many bytes arrived. Only the 500s of the versions named in
// excuse500 are forgiven.
func StartAppLoad(t testing.TB, url string, excuse500 ...string) *Load {
	t.Helper()
	return StartLoad(t, AppLoadSpec(url, excuse500...))
}

// AppLoadSpec is the load StartAppLoad sends, for a caller that changes
// its rate.
func AppLoadSpec(url string, excuse500 ...string) LoadSpec {
	url = strings.TrimSuffix(url, "/")
	return LoadSpec{Get: url + "/", Post: url + "/", Slow: url + "/?sleep=300ms",
		CountBy: "X-Demo-Version", Excuse500: excuse500,
		CheckPost: func(sent string, answer []byte) error {
			if want := fmt.Sprintf("read %d bytes", len(sent)); !strings.Contains(string(answer), want) {
				return fmt.Errorf("answer %q does not say %q: the body did not arrive whole", strings.TrimSpace(string(answer)), want)
			}
			return nil
		}}
}

// schedule sends request i at start + i/Rate, each on its own goroutine.
func (l *Load) schedule() {
	defer l.wg.Done()
	sem := make(chan struct{}, loadConcurrency)
	interval := time.Second / time.Duration(l.spec.Rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		if wait := time.Until(l.start.Add(time.Duration(i) * interval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-l.stop:
				return
			case <-timer.C:
			}
		}
		select {
		case <-l.stop:
			return
		case sem <- struct{}{}:
		}
		l.mu.Lock()
		l.sent++
		l.mu.Unlock()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-sem }()
			l.one(i)
		}()
	}
}

// one sends request i of the mix and records what came of it.
func (l *Load) one(i int) {
	var method, url, body string
	switch i % 10 {
	case 0, 1:
		method, url = http.MethodPost, l.spec.Post
	case 2:
		method, url = http.MethodPost, l.spec.Slow
	case 5:
		method, url = http.MethodGet, l.spec.Slow
	default:
		method, url = http.MethodGet, l.spec.Get
	}
	if method == http.MethodPost {
		// Bodies of varied length, up to 4 KiB, unique to the request.
		body = fmt.Sprintf("request-%d-", i) + strings.Repeat("x", (i*37)%4096)
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		l.record("", fmt.Sprintf("%s %s: %v", method, url, err), false)
		return
	}
	what := method + " " + req.URL.RequestURI()
	resp, err := l.client.Do(req)
	if err != nil {
		l.record("", fmt.Sprintf("%s: %v", what, err), false)
		return
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	key := resp.Header.Get(l.spec.CountBy)
	switch {
	case err != nil:
		l.record(key, fmt.Sprintf("%s: read the answer: %v", what, err), false)
	case resp.StatusCode == http.StatusInternalServerError && key != "" && l.excusable(key):
		l.record(key, "", true)
	case resp.StatusCode/100 != 2:
		l.record(key, fmt.Sprintf("%s: %d from %q: %s", what, resp.StatusCode, key, strings.TrimSpace(string(answer))), false)
	case method == http.MethodPost && l.spec.CheckPost != nil:
		if err := l.spec.CheckPost(body, answer); err != nil {
			l.record(key, fmt.Sprintf("%s: %v", what, err), false)
			return
		}
		l.record(key, "", false)
	default:
		l.record(key, "", false)
	}
}

func (l *Load) excusable(key string) bool {
	for _, k := range l.spec.Excuse500 {
		if k == key {
			return true
		}
	}
	return false
}

// record counts one answer: a failure if failure is set, a deliberate 500
// if excused, a success otherwise.
func (l *Load) record(key, failure string, excused bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answered++
	switch {
	case failure != "":
		l.failed++
		if len(l.failures) < 10 {
			l.failures = append(l.failures, failure)
		}
	case excused:
		l.excused[key]++
	default:
		l.ok++
		l.byKey[key]++
	}
}

// Stop ends the schedule and waits for the requests in flight. It may be
// called more than once.
func (l *Load) Stop() {
	l.once.Do(func() {
		close(l.stop)
		l.mu.Lock()
		l.end = time.Now()
		l.mu.Unlock()
	})
	l.wg.Wait()
}

// OK is the number of successful answers so far.
func (l *Load) OK() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok
}

// Served is the number of successful answers that key gave.
func (l *Load) Served(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byKey[key]
}

// Excused is the number of deliberate 500s that key gave.
func (l *Load) Excused(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.excused[key]
}

// Failed is the number of failed requests so far.
func (l *Load) Failed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// Rate is the rate the load achieved: requests sent per second from its
// start to Stop (or now).
func (l *Load) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	end := l.end
	if end.IsZero() {
		end = time.Now()
	}
	return float64(l.sent) / end.Sub(l.start).Seconds()
}

// WaitServed waits until key has given n successful answers ("" counts
// every answer), and fails the test if that takes over 30 seconds.
func (l *Load) WaitServed(t testing.TB, key string, n int) {
	t.Helper()
	count := func() int {
		if key == "" {
			return l.OK()
		}
		return l.Served(key)
	}
	deadline := time.Now().Add(30 * time.Second)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("load: %q gave %d successful answers in 30s, want %d (%s)", key, count(), n, l)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitMore waits until the load has had n more successful answers than
// now, so a test knows traffic flowed in a phase without sleeping.
func (l *Load) WaitMore(t testing.TB, n int) {
	t.Helper()
	l.WaitServed(t, "", l.OK()+n)
}

// String sums the load up: requests, rate, answers by key, failures.
func (l *Load) String() string {
	rate := l.Rate()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := fmt.Sprintf("%d requests at %.0f/s, %d answered, %d ok by %s %v, %d failed", l.sent, rate, l.answered, l.ok, l.spec.CountBy, l.byKey, l.failed)
	if len(l.excused) > 0 {
		s += fmt.Sprintf(", deliberate 500s %v", l.excused)
	}
	return s
}

// AssertNoFailures stops the load and fails the test on any request lost
// (a connection error, a non-2xx answer not excused, a body that did not
// arrive whole), or if the load was too thin to prove anything.
func (l *Load) AssertNoFailures(t testing.TB) {
	t.Helper()
	l.Stop()
	t.Logf("load: %s", l)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent < 50 {
		t.Errorf("load sent only %d requests; the test proves nothing", l.sent)
	}
	if l.failed > 0 {
		t.Errorf("%d of %d requests lost, first %d:\n%s", l.failed, l.sent, len(l.failures), strings.Join(l.failures, "\n"))
	}
}
