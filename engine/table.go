package engine

import (
	"fmt"
	"sort"
	"strings"
)

// The table algebra: pure functions from route tables, instances and
// weights to route tables, shared by the steps and the rollback.

func weightsByID(t RouteTable) map[string]int {
	w := make(map[string]int, len(t.Backends))
	for _, b := range t.Backends {
		w[b.ID] = b.Weight
	}
	return w
}

// weightedTable makes the table that gives each version of ws its share,
// from the current table and the platform's instances: every backend still
// on the platform stays (weight 0 unless ws gives it some), joiners (healthy
// instances a release launched) are added, and each version's share is split
// evenly over the running instances that may carry it. may says whether a
// backend may carry traffic (nil: the ones serving in cur).
func weightedTable(cur RouteTable, insts map[string]Instance, joiners []string, may func(Backend) bool, ws []VersionWeight) (RouteTable, error) {
	curW := weightsByID(cur)
	if may == nil {
		may = func(b Backend) bool { return curW[b.ID] > 0 }
	}
	var bs []Backend
	in := map[string]bool{}
	for _, b := range cur.Backends {
		if inst, ok := insts[b.ID]; ok {
			in[b.ID] = true
			b.Weight = 0
			if inst.Addr != "" {
				b.Addr = inst.Addr
			}
			bs = append(bs, b)
		}
	}
	for _, id := range joiners {
		if inst, ok := insts[id]; ok && !in[id] && inst.State == StateRunning {
			bs = append(bs, Backend{ID: id, Addr: inst.Addr, Version: inst.Version})
			in[id] = true
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].ID < bs[j].ID })
	for _, w := range ws {
		var elig []int
		for i, b := range bs {
			if b.Version == w.Version && insts[b.ID].State == StateRunning && may(b) {
				elig = append(elig, i)
			}
		}
		if w.Keep >= 0 && len(elig) > w.Keep {
			// Keep the newest in rotation; the oldest go first.
			sort.SliceStable(elig, func(a, b int) bool {
				return insts[bs[elig[a]].ID].Started.After(insts[bs[elig[b]].ID].Started)
			})
			elig = elig[:w.Keep]
			sort.Ints(elig)
		}
		if w.BP > 0 && len(elig) == 0 {
			return RouteTable{}, failf("no healthy instance of %s to carry %s of traffic", w.Version, fmtBP(w.BP))
		}
		split(bs, elig, w.BP)
	}
	// An instance that is not running has nothing in flight to drain: it
	// leaves the table rather than lingering at weight 0.
	kept := bs[:0]
	for _, b := range bs {
		if b.Weight > 0 || insts[b.ID].State == StateRunning {
			kept = append(kept, b)
		}
	}
	return RouteTable{Backends: kept}, nil
}

// withoutDead is t with no weight on backends whose instance is gone or not
// running, unless that would leave no weight at all (then t as it is: the
// router holds dead backends out by itself).
func withoutDead(t RouteTable, insts []Instance) RouteTable {
	running := make(map[string]bool, len(insts))
	for _, in := range insts {
		running[in.ID] = in.State == StateRunning
	}
	out := RouteTable{Backends: make([]Backend, len(t.Backends))}
	sum := 0
	for i, b := range t.Backends {
		if !running[b.ID] {
			b.Weight = 0
		}
		sum += b.Weight
		out.Backends[i] = b
	}
	if sum == 0 {
		return RouteTable{Backends: t.Backends}
	}
	return out
}

// swapTable is a rollback's first table, made from the router's table
// alone so that nothing on the way to it waits for the platform: all
// traffic to the stable version's serving backends, every other backend
// kept at weight 0 so its requests drain. When no stable backend serves
// (blue kept warm after a blue/green switch), the stable backends at
// weight 0 that answer alive get it. Backends in doomed (their stop is
// under way) never do. ok is false when no stable backend can take the
// traffic: the rollback must bring stable back first.
func swapTable(cur RouteTable, stable string, doomed map[string]bool, alive func(Backend) bool) (RouteTable, bool) {
	t := RouteTable{Backends: make([]Backend, len(cur.Backends))}
	var serving, warm []int
	for i, b := range cur.Backends {
		switch {
		case b.Version != stable || doomed[b.ID]:
		case b.Weight > 0:
			serving = append(serving, i)
		default:
			warm = append(warm, i)
		}
		b.Weight = 0
		t.Backends[i] = b
	}
	if len(serving) == 0 && alive != nil {
		for _, i := range warm {
			if alive(cur.Backends[i]) {
				serving = append(serving, i)
			}
		}
	}
	if len(serving) == 0 {
		return RouteTable{}, false
	}
	split(t.Backends, serving, Full)
	return t, true
}

// split gives bp to the backends at idx in equal integer parts, the
// remainder one by one to the first ones.
func split(bs []Backend, idx []int, bp int) {
	if len(idx) == 0 {
		return
	}
	base, rem := bp/len(idx), bp%len(idx)
	for k, i := range idx {
		bs[i].Weight = base
		if k < rem {
			bs[i].Weight++
		}
	}
}

func sameTable(a, b RouteTable) bool {
	if len(a.Backends) != len(b.Backends) {
		return false
	}
	m := map[string]Backend{}
	for _, x := range b.Backends {
		m[x.ID] = x
	}
	for _, x := range a.Backends {
		y, ok := m[x.ID]
		if !ok || x.Weight != y.Weight || x.Addr != y.Addr || x.Version != y.Version {
			return false
		}
	}
	return true
}

// describeTable summarizes a table: "1.0.0 90% on 3, 1.1.0 10% on 1, 2 at weight 0".
func describeTable(t RouteTable) string {
	total := 0
	var order []string
	n := map[string]int{}
	w := map[string]int{}
	zero := 0
	for _, b := range t.Backends {
		total += b.Weight
		if b.Weight == 0 {
			zero++
			continue
		}
		if n[b.Version] == 0 {
			order = append(order, b.Version)
		}
		n[b.Version]++
		w[b.Version] += b.Weight
	}
	sort.Strings(order)
	var parts []string
	for _, v := range order {
		parts = append(parts, fmt.Sprintf("%s %s on %d", v, fmtBP(int(int64(w[v])*Full/int64(total))), n[v]))
	}
	if zero > 0 {
		parts = append(parts, fmt.Sprintf("%d at weight 0", zero))
	}
	if len(parts) == 0 {
		return "empty"
	}
	return strings.Join(parts, ", ")
}

// zeroOut sets ids to weight 0, giving their weight to the other serving
// instances of the same version.
func zeroOut(cur RouteTable, ids []string) (RouteTable, error) {
	drop := map[string]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	t := RouteTable{Backends: append([]Backend(nil), cur.Backends...)}
	freed := map[string]int{}
	for i, b := range t.Backends {
		if drop[b.ID] && b.Weight > 0 {
			freed[b.Version] += b.Weight
			t.Backends[i].Weight = 0
		}
	}
	for v, bp := range freed {
		var rest []int
		total := bp
		for i, b := range t.Backends {
			if b.Version == v && b.Weight > 0 {
				rest = append(rest, i)
				total += b.Weight
			}
		}
		if len(rest) == 0 {
			return RouteTable{}, failf("cannot retire the last serving instances of %s: they still carry traffic", v)
		}
		split(t.Backends, rest, total)
	}
	return t, nil
}
