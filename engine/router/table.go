package router

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"

	"github.com/cutover/cutover/engine"
)

// ErrInvalidTable marks a route table the router refuses (duplicate ids,
// negative weights, bad addresses...). Nothing changes when it is returned.
var ErrInvalidTable = errors.New("invalid route table")

// maxWeight bounds a single weight so sums cannot overflow and the smooth
// sequence stays small.
const maxWeight = 1_000_000

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

// validateTable checks a table before anything is changed and names every
// backend that is wrong and why.
func validateTable(rt engine.RouteTable) error {
	var problems []string
	if rt.Epoch == math.MaxUint64 {
		// Writers fence each other by applying the epoch they read plus
		// one; at the largest epoch that wraps to 0 and fences everyone.
		problems = append(problems, fmt.Sprintf("epoch %d is the largest there is: no writer could apply a newer table after it", rt.Epoch))
	}
	seen := make(map[string]int)
	total := 0
	for i, b := range rt.Backends {
		name := fmt.Sprintf("backend %d %q", i, b.ID)
		if b.ID == "" {
			name = fmt.Sprintf("backend %d", i)
			problems = append(problems, name+": empty id")
		} else if j, dup := seen[b.ID]; dup {
			problems = append(problems, fmt.Sprintf("%s: duplicate id (also backend %d)", name, j))
		} else {
			seen[b.ID] = i
		}
		switch {
		case b.Weight < 0:
			problems = append(problems, fmt.Sprintf("%s: negative weight %d", name, b.Weight))
		case b.Weight > maxWeight:
			problems = append(problems, fmt.Sprintf("%s: weight %d is above the maximum %d", name, b.Weight, maxWeight))
		default:
			total += b.Weight
		}
		if err := checkAddr(b.Addr); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if len(rt.Backends) > 0 && total == 0 && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("weights sum to 0 with %d backends: no backend could take traffic (apply an empty table to route nothing)", len(rt.Backends)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidTable, strings.Join(problems, "; "))
	}
	return nil
}

// checkAddr accepts host:port with a non-empty host and a numeric port.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		reason := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			reason = ae.Err
		}
		return fmt.Errorf("address %q is not host:port (%s)", addr, reason)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("address %q: port %q is not a number", addr, port)
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("address %q: port %d is out of range 1-65535", addr, n)
	}
	return nil
}

// cloneTable copies rt so that the router's applied table shares no slice
// with its caller; an absent backend list becomes an empty one.
func cloneTable(rt engine.RouteTable) engine.RouteTable {
	out := engine.RouteTable{Epoch: rt.Epoch, Writer: rt.Writer, Backends: make([]engine.Backend, len(rt.Backends))}
	copy(out.Backends, rt.Backends)
	return out
}
