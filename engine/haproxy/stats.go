package haproxy

import (
	"sort"
	"time"

	"github.com/cutover/cutover/engine"
)

// totalsOf maps one server's `show stat` counters onto the engine's
// cumulative totals. Exact: the response classes (1xx with 2xx, as the
// built-in router counts upgrades), proxy errors (econ: no connection,
// eresp: no complete response) and retries (wretr + wredis). Requests are
// every response plus every proxy error. Not available: latency. HAProxy
// keeps only averages of the last 1024 requests and maxima, from which no
// distribution can be rebuilt, so the histogram is left empty rather than
// invented; config check refuses p99 limits for services behind HAProxy.
func totalsOf(s stat) engine.Totals {
	t := engine.Totals{
		Class2xx:    s.Resp1xx + s.Resp2xx,
		Class3xx:    s.Resp3xx,
		Class4xx:    s.Resp4xx,
		Class5xx:    s.Resp5xx,
		ProxyErrors: s.ConnErrors + s.RespErrors,
		Retries:     s.Retries + s.Redispatches,
	}
	t.Requests = t.Class2xx + t.Class3xx + t.Class4xx + t.Class5xx + s.RespOther + t.ProxyErrors
	return t
}

func addTotals(a *engine.Totals, b engine.Totals) {
	a.Requests += b.Requests
	a.Class2xx += b.Class2xx
	a.Class3xx += b.Class3xx
	a.Class4xx += b.Class4xx
	a.Class5xx += b.Class5xx
	a.ProxyErrors += b.ProxyErrors
	a.Retries += b.Retries
}

// statsOf builds the engine's stats from a view and `show stat`. A
// version's totals add its servers in the table, its retiring servers
// and the final counters of its deleted servers (kept in the map), so
// they never shrink while HAProxy runs. Started is HAProxy's start: its
// counters begin there, and a restart makes two snapshots incomparable.
func statsOf(v view, st map[string]stat) engine.Stats {
	out := engine.Stats{Epoch: v.rec.Epoch, At: time.Now(), Started: v.info.Started}
	versions := map[string]*engine.VersionStats{}
	version := func(name string) *engine.VersionStats {
		vs, ok := versions[name]
		if !ok {
			vs = &engine.VersionStats{Version: name}
			versions[name] = vs
		}
		return vs
	}
	for _, id := range sortedKeys(v.rec.Backends) {
		b := v.rec.Backends[id]
		s := st[id]
		bs := engine.BackendStats{ID: id, Version: b.Version, Weight: b.Weight, InFlight: s.Cur + s.Queued, HeldOut: s.Down, Totals: totalsOf(s)}
		out.Backends = append(out.Backends, bs)
		vs := version(b.Version)
		vs.InFlight += bs.InFlight
		addTotals(&vs.Totals, bs.Totals)
	}
	for _, id := range sortedKeys(v.rec.Retiring) {
		if _, ok := v.rec.Backends[id]; ok {
			continue
		}
		s, ok := st[id]
		if !ok {
			continue
		}
		vs := version(v.rec.Retiring[id])
		vs.InFlight += s.Cur + s.Queued
		addTotals(&vs.Totals, totalsOf(s))
	}
	for name, t := range v.rec.Retired {
		addTotals(&version(name).Totals, t)
	}
	for _, vs := range versions {
		out.Versions = append(out.Versions, *vs)
	}
	sort.Slice(out.Versions, func(i, j int) bool { return out.Versions[i].Version < out.Versions[j].Version })
	return out
}
