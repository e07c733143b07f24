package router

import (
	"github.com/cutover/cutover/engine"
)

// ErrInvalidTable marks a route table the router refuses (duplicate ids,
// negative weights, bad addresses, an epoch no writer could follow...). It
// is engine.ErrInvalidTable, so callers may test for either. Nothing changes
// when it is returned.
var ErrInvalidTable = engine.ErrInvalidTable

// table is one applied RouteTable made ready for routing. It is immutable once
// published: requests read it through an atomic pointer, without locks.
type table struct {
	spec      engine.RouteTable
	entries   []*entry
	all       *balancer            // every backend with weight > 0
	byVersion map[string]*balancer // the same, per version
}

// entry is one backend of a table with the long-lived objects it routes
// through: its counters, its version's counters and its address' transport.
type entry struct {
	backend engine.Backend
	stats   *backendState
	version *versionState
	up      *upstream
}

// begin counts a request in flight on e; end undoes it.
func (e *entry) begin() {
	e.stats.inflight.Add(1)
	e.version.inflight.Add(1)
	e.up.begin()
}

func (e *entry) end() {
	e.stats.inflight.Add(-1)
	e.version.inflight.Add(-1)
	e.up.end()
}

func newTable(spec engine.RouteTable, entries []*entry) *table {
	t := &table{spec: spec, entries: entries, byVersion: make(map[string]*balancer)}
	var all []*entry
	byVersion := make(map[string][]*entry)
	for _, e := range entries {
		if e.backend.Weight > 0 {
			all = append(all, e)
			byVersion[e.backend.Version] = append(byVersion[e.backend.Version], e)
		}
	}
	t.all = newBalancer(all)
	for v, es := range byVersion {
		t.byVersion[v] = newBalancer(es)
	}
	return t
}

// validateTable checks a table before anything is changed, by the rule
// every router shares (engine.ValidateTable): among others, an epoch above
// engine.MaxEpoch is refused, since a writer claims the epoch it read plus
// one and one at the top of uint64 would leave no epoch to fence it with.
func validateTable(rt engine.RouteTable) error { return engine.ValidateTable(rt) }

// cloneTable copies rt so that the router's applied table shares no slice
// with its caller; an absent backend list becomes an empty one.
func cloneTable(rt engine.RouteTable) engine.RouteTable {
	out := engine.RouteTable{Epoch: rt.Epoch, Writer: rt.Writer, Backends: make([]engine.Backend, len(rt.Backends))}
	copy(out.Backends, rt.Backends)
	return out
}
