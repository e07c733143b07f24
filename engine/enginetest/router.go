package enginetest

import (
	"context"
	"sort"
	"sync"

	"github.com/cutover/cutover/engine"
)

// LatencyBoundsMs are the histogram bounds of the fake router.
var latencyBoundsMs = []float64{5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000}

// Router is an in-memory engine.Router. It keeps every applied table,
// simulates in-flight requests and cumulative per-version figures, and can
// be told to fail.
type Router struct {
	Trace *Trace
	// Check, if set, vets each applied table; failures are kept as
	// violations (the table is still applied, as a real router would).
	Check func(engine.RouteTable) error
	// BeforeApply, if set, runs at the start of each Apply, outside the
	// lock: a test's other writer can act between a read and a write.
	BeforeApply func()

	mu         sync.Mutex
	table      engine.RouteTable
	applied    []engine.RouteTable
	inFlight   map[string]int64
	abandoned  map[string]bool
	totals     map[string]*engine.Totals
	changed    chan struct{}
	violations []string
	stateErr   error
	applyErr   error
	perState   []traffic
}

type traffic struct {
	version   string
	requests  int64
	errors5xx int64
	latencyMs float64
}

// NewRouter returns a router with an empty table at epoch 0.
func NewRouter(trace *Trace) *Router {
	return &Router{Trace: trace, inFlight: map[string]int64{}, abandoned: map[string]bool{},
		totals: map[string]*engine.Totals{}, changed: make(chan struct{})}
}

func (r *Router) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Apply replaces the table unless its epoch is older than the current one.
func (r *Router) Apply(ctx context.Context, t engine.RouteTable) error {
	if r.BeforeApply != nil {
		r.BeforeApply()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Trace.Add("router:apply")
	if r.applyErr != nil {
		return r.applyErr
	}
	if err := engine.ValidateTable(t); err != nil {
		return err
	}
	if t.Epoch < r.table.Epoch || t.Epoch == r.table.Epoch && t.Writer != r.table.Writer {
		return engine.ErrStaleEpoch
	}
	t.Backends = append([]engine.Backend(nil), t.Backends...)
	if r.Check != nil {
		if err := r.Check(t); err != nil {
			r.violations = append(r.violations, err.Error())
		}
	}
	r.table = t
	r.applied = append(r.applied, t)
	r.notify()
	return nil
}

// State returns the table and figures.
func (r *Router) State(ctx context.Context) (engine.RouteTable, engine.Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stateErr != nil {
		return engine.RouteTable{}, engine.Stats{}, r.stateErr
	}
	for _, tr := range r.perState {
		r.serve(tr.version, tr.requests, tr.errors5xx, tr.latencyMs)
	}
	t := r.table
	t.Backends = append([]engine.Backend(nil), t.Backends...)
	s := engine.Stats{Epoch: t.Epoch}
	for _, b := range t.Backends {
		s.Backends = append(s.Backends, engine.BackendStats{ID: b.ID, Version: b.Version, Weight: b.Weight, InFlight: r.inFlight[b.ID]})
	}
	var vs []string
	for v := range r.totals {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	for _, v := range vs {
		tot := *r.totals[v]
		tot.Latency.Counts = append([]int64(nil), tot.Latency.Counts...)
		s.Versions = append(s.Versions, engine.VersionStats{Version: v, Totals: tot})
	}
	return t, s, nil
}

// WaitDrained returns when ids have nothing in flight, or ctx's error;
// instances left with requests in flight are marked as abandoned.
func (r *Router) WaitDrained(ctx context.Context, ids []string) error {
	for {
		r.mu.Lock()
		busy := false
		for _, id := range ids {
			busy = busy || r.inFlight[id] > 0
		}
		ch := r.changed
		if !busy {
			r.mu.Unlock()
			return nil
		}
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			r.mu.Lock()
			for _, id := range ids {
				if r.inFlight[id] > 0 {
					r.abandoned[id] = true
				}
			}
			r.mu.Unlock()
			return ctx.Err()
		}
	}
}

// SetInFlight simulates n requests in flight at backend id.
func (r *Router) SetInFlight(id string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight[id] = n
	r.notify()
}

// InFlight is the simulated in-flight count of id.
func (r *Router) InFlight(id string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inFlight[id]
}

// DrainAbandoned says whether a drain of id timed out with requests left.
func (r *Router) DrainAbandoned(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.abandoned[id]
}

// Weight is id's weight in the current table.
func (r *Router) Weight(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.table.Backends {
		if b.ID == id {
			return b.Weight
		}
	}
	return 0
}

// Table returns the current table.
func (r *Router) Table() engine.RouteTable {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.table
	t.Backends = append([]engine.Backend(nil), t.Backends...)
	return t
}

// Applied returns every table applied so far, in order.
func (r *Router) Applied() []engine.RouteTable {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.RouteTable(nil), r.applied...)
}

// Violations lists tables Check rejected.
func (r *Router) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...)
}

// Serve records traffic to version: requests in total, errors of them
// answered 5xx, all with the given latency.
func (r *Router) Serve(version string, requests, errors5xx int64, latencyMs float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.serve(version, requests, errors5xx, latencyMs)
}

// ServeOnState makes every State call first record this traffic, so
// figures grow as the engine polls (as if load ran all along).
func (r *Router) ServeOnState(version string, requests, errors5xx int64, latencyMs float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.perState = append(r.perState, traffic{version, requests, errors5xx, latencyMs})
}

func (r *Router) serve(version string, requests, errors5xx int64, latencyMs float64) {
	t := r.totals[version]
	if t == nil {
		t = &engine.Totals{Latency: engine.Histogram{BoundsMs: latencyBoundsMs, Counts: make([]int64, len(latencyBoundsMs)+1)}}
		r.totals[version] = t
	}
	t.Requests += requests
	t.Class5xx += errors5xx
	t.Class2xx += requests - errors5xx
	for i := range t.Latency.Counts {
		if i == len(latencyBoundsMs) || latencyMs <= latencyBoundsMs[i] {
			t.Latency.Counts[i] += requests
		}
	}
	t.Latency.SumMs += latencyMs * float64(requests)
}

// TakeOver simulates another writer applying the current table with epoch.
func (r *Router) TakeOver(epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.table.Epoch = epoch
	r.table.Writer = "another writer"
	r.applied = append(r.applied, r.table)
	r.notify()
}

// FailState makes State fail with err (nil to heal).
func (r *Router) FailState(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stateErr = err
}

// FailApply makes Apply fail with err (nil to heal).
func (r *Router) FailApply(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applyErr = err
}

// Seed applies a table directly, as a previous release would have left it.
func (r *Router) Seed(t engine.RouteTable) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.table = t
	r.notify()
}
