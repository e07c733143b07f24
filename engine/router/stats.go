package router

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/cutover/cutover/engine"
)

// latencyBoundsMs are the upper bounds of the latency histogram buckets. They
// are fixed (and never written) so that two snapshots, or the figures of two
// routers, can be subtracted bucket by bucket.
var latencyBoundsMs = [...]float64{1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}

const (
	numBuckets = len(latencyBoundsMs) + 1 // the last one is +Inf
	ringSize   = 60                       // seconds of history, enough for the "1m" window
	resetting  = -1                       // ring slot second while its counters are being zeroed
)

// windows are the sliding windows reported in stats, by name.
var windows = [...]struct {
	name    string
	seconds int
}{{"10s", 10}, {"1m", 60}}

// outcome is what happened to one attempt at a backend.
type outcome struct {
	status     int  // response status sent to the client; 0 when proxyErr
	proxyErr   bool // no (complete) response from the backend
	retried    bool // the request was replayed on another backend after this attempt
	latency    time.Duration
	hasLatency bool
}

// counters are lock-free figures; every field is updated with atomics so the
// request path never takes a lock.
type counters struct {
	requests    atomic.Int64
	class       [4]atomic.Int64 // 2xx, 3xx, 4xx, 5xx (1xx upgrades count as 2xx)
	proxyErrors atomic.Int64
	retries     atomic.Int64
	buckets     [numBuckets]atomic.Int64 // per bucket, not cumulative
	sumMicros   atomic.Int64
}

func (c *counters) add(o outcome) {
	c.requests.Add(1)
	if o.proxyErr {
		c.proxyErrors.Add(1)
	} else if i := classIndex(o.status); i >= 0 {
		c.class[i].Add(1)
	}
	if o.retried {
		c.retries.Add(1)
	}
	if o.hasLatency {
		c.buckets[bucketOf(o.latency)].Add(1)
		c.sumMicros.Add(o.latency.Microseconds())
	}
}

func (c *counters) reset() {
	c.requests.Store(0)
	for i := range c.class {
		c.class[i].Store(0)
	}
	c.proxyErrors.Store(0)
	c.retries.Store(0)
	for i := range c.buckets {
		c.buckets[i].Store(0)
	}
	c.sumMicros.Store(0)
}

// tally is a plain copy of counters, used to sum slots and build reports.
type tally struct {
	requests    int64
	class       [4]int64
	proxyErrors int64
	retries     int64
	buckets     [numBuckets]int64
	sumMicros   int64
}

func (t *tally) addCounters(c *counters) {
	t.requests += c.requests.Load()
	for i := range c.class {
		t.class[i] += c.class[i].Load()
	}
	t.proxyErrors += c.proxyErrors.Load()
	t.retries += c.retries.Load()
	for i := range c.buckets {
		t.buckets[i] += c.buckets[i].Load()
	}
	t.sumMicros += c.sumMicros.Load()
}

func classIndex(status int) int {
	switch {
	case status >= 100 && status < 300:
		return 0
	case status >= 300 && status < 400:
		return 1
	case status >= 400 && status < 500:
		return 2
	case status >= 500 && status < 600:
		return 3
	}
	return -1
}

func bucketOf(d time.Duration) int {
	ms := float64(d) / float64(time.Millisecond)
	for i, b := range latencyBoundsMs {
		if ms <= b {
			return i
		}
	}
	return numBuckets - 1
}

// slot holds the counters of one second of the ring.
type slot struct {
	sec atomic.Int64
	c   counters
}

// ring is a sliding window of per-second counters. A slot is claimed for a
// new second by whoever first records in it: it swaps the second to
// "resetting", zeroes the counters and publishes the new second, so no lock
// is needed and readers skip a slot that is being reset.
type ring struct {
	slots [ringSize]slot
}

// at returns the counters of second sec, or nil when sec is older than what
// the slot already holds (a sample too late to count).
func (r *ring) at(sec int64) *counters {
	s := &r.slots[sec%ringSize]
	for {
		cur := s.sec.Load()
		switch {
		case cur == sec:
			return &s.c
		case cur == resetting:
			runtime.Gosched()
		case cur > sec:
			return nil
		default:
			if s.sec.CompareAndSwap(cur, resetting) {
				s.c.reset()
				s.sec.Store(sec)
				return &s.c
			}
		}
	}
}

// sum adds the slots of the last n seconds up to and including now.
func (r *ring) sum(now int64, n int) tally {
	var t tally
	for i := range r.slots {
		s := &r.slots[i]
		sec := s.sec.Load()
		if sec <= now-int64(n) || sec > now {
			continue
		}
		t.addCounters(&s.c)
	}
	return t
}

// meter counts one backend's or one version's traffic: totals since start and
// a ring of per-second counters for the sliding windows.
type meter struct {
	total counters
	ring  ring
}

func (m *meter) record(now time.Time, o outcome) {
	m.total.add(o)
	if c := m.ring.at(now.Unix()); c != nil {
		c.add(o)
	}
}

// report turns the meter into the wire figures. uptime caps the span over
// which the windows compute rates, so a young router does not under-report.
func (m *meter) report(now time.Time, uptime time.Duration) (engine.Totals, map[string]engine.Window) {
	var t tally
	t.addCounters(&m.total)
	ws := make(map[string]engine.Window, len(windows))
	for _, w := range windows {
		ws[w.name] = windowOf(m.ring.sum(now.Unix(), w.seconds), w.seconds, now, uptime)
	}
	return totalsOf(t), ws
}

func totalsOf(t tally) engine.Totals {
	return engine.Totals{
		Requests:    t.requests,
		Class2xx:    t.class[0],
		Class3xx:    t.class[1],
		Class4xx:    t.class[2],
		Class5xx:    t.class[3],
		ProxyErrors: t.proxyErrors,
		Retries:     t.retries,
		Latency:     histogramOf(t),
	}
}

func histogramOf(t tally) engine.Histogram {
	h := engine.Histogram{
		BoundsMs: append([]float64(nil), latencyBoundsMs[:]...),
		Counts:   make([]int64, numBuckets),
		SumMs:    float64(t.sumMicros) / 1000,
	}
	var cum int64
	for i, n := range t.buckets {
		cum += n
		h.Counts[i] = cum
	}
	return h
}

// windowOf reports n seconds of counters. The current second is only partly
// over, so the rate divides by the time that actually elapsed.
func windowOf(t tally, n int, now time.Time, uptime time.Duration) engine.Window {
	span := time.Duration(n-1)*time.Second + now.Sub(now.Truncate(time.Second))
	if uptime < span {
		span = uptime
	}
	if span < time.Millisecond {
		span = time.Millisecond
	}
	w := engine.Window{
		Seconds:     n,
		Requests:    t.requests,
		RPS:         float64(t.requests) / span.Seconds(),
		Class2xx:    t.class[0],
		Class3xx:    t.class[1],
		Class4xx:    t.class[2],
		Class5xx:    t.class[3],
		ProxyErrors: t.proxyErrors,
		P50Ms:       quantile(t.buckets, 0.50),
		P95Ms:       quantile(t.buckets, 0.95),
		P99Ms:       quantile(t.buckets, 0.99),
	}
	if t.requests > 0 {
		w.ErrorRate = float64(t.class[3]+t.proxyErrors) / float64(t.requests)
	}
	return w
}

// quantile estimates the q-quantile in milliseconds from per-bucket counts,
// interpolating linearly inside the bucket as Prometheus' histogram_quantile
// does. Latencies above the last bound report that bound.
func quantile(buckets [numBuckets]int64, q float64) float64 {
	var total int64
	for _, n := range buckets {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum int64
	for i, n := range buckets {
		if n == 0 || float64(cum+n) < rank {
			cum += n
			continue
		}
		if i == numBuckets-1 {
			return latencyBoundsMs[len(latencyBoundsMs)-1]
		}
		lower := 0.0
		if i > 0 {
			lower = latencyBoundsMs[i-1]
		}
		upper := latencyBoundsMs[i]
		return lower + (upper-lower)*(rank-float64(cum))/float64(n)
	}
	return latencyBoundsMs[len(latencyBoundsMs)-1]
}

// backendState is what the router keeps about one backend id across tables:
// its counters and its in-flight requests, which outlive its table entry.
type backendState struct {
	id       string
	inflight atomic.Int64
	meter    meter
	last     engine.Backend // last table entry; guarded by Server.mu
}

// versionState sums the traffic of all backends of one version; it is never
// dropped, so a version's figures survive its backends leaving the table.
type versionState struct {
	version  string
	inflight atomic.Int64
	meter    meter
}
