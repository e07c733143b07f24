package haproxy

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cutover/cutover/engine"
)

// record is cutover's part of the route table kept in HAProxy itself, in
// an HAProxy map: what the servers alone cannot say (the epoch and writer
// that fence writers, each backend's version and exact weight) and the
// counters of servers deleted since HAProxy started, so a version's totals
// do not shrink when its servers leave. It is replaced atomically (prepare
// map / commit map), and it is gone when HAProxy restarts, as the dynamic
// servers are.
type record struct {
	Present  bool // the map holds a record: cutover has written to this HAProxy
	Epoch    uint64
	Writer   string
	Backends map[string]engine.Backend // by server name (the backend's id)
	// Retiring are servers that left the table but could not be deleted
	// yet (requests still in flight): name → version. They are in
	// maintenance, and the next apply deletes them.
	Retiring map[string]string
	// Retired are the final counters of deleted servers, by version.
	Retired map[string]engine.Totals
}

// Map keys. A server's key holds its id, so keys and server names agree.
const (
	keyEpoch    = "cutover.epoch"
	keyWriter   = "cutover.writer"
	prefixB     = "b." // b.<id>: addr, version, weight of a table backend
	prefixR     = "r." // r.<id>: version of a retiring server
	prefixTotal = "v." // v.<escaped version>: totals of deleted servers
)

func newRecord() record {
	return record{Backends: map[string]engine.Backend{}, Retiring: map[string]string{}, Retired: map[string]engine.Totals{}}
}

// table is the route table the record describes.
func (r record) table() engine.RouteTable {
	t := engine.RouteTable{Epoch: r.Epoch, Writer: r.Writer, Backends: []engine.Backend{}}
	for _, b := range r.Backends {
		t.Backends = append(t.Backends, b)
	}
	sort.Slice(t.Backends, func(i, j int) bool { return t.Backends[i].ID < t.Backends[j].ID })
	return t
}

// entries renders the record as map entries. Values are URL-encoded, so
// they hold no space, ';' or newline that the runtime API would split on.
func (r record) entries() [][2]string {
	out := [][2]string{
		{keyEpoch, strconv.FormatUint(r.Epoch, 10)},
		{keyWriter, url.Values{"w": {r.Writer}}.Encode()},
	}
	for _, id := range sortedKeys(r.Backends) {
		b := r.Backends[id]
		out = append(out, [2]string{prefixB + id, url.Values{
			"addr": {b.Addr}, "version": {b.Version}, "weight": {strconv.Itoa(b.Weight)},
		}.Encode()})
	}
	for _, id := range sortedKeys(r.Retiring) {
		out = append(out, [2]string{prefixR + id, url.Values{"version": {r.Retiring[id]}}.Encode()})
	}
	for _, v := range sortedKeys(r.Retired) {
		t := r.Retired[v]
		out = append(out, [2]string{prefixTotal + url.QueryEscape(v), url.Values{
			"requests": {itoa(t.Requests)}, "2xx": {itoa(t.Class2xx)}, "3xx": {itoa(t.Class3xx)},
			"4xx": {itoa(t.Class4xx)}, "5xx": {itoa(t.Class5xx)},
			"proxy_errors": {itoa(t.ProxyErrors)}, "retries": {itoa(t.Retries)},
		}.Encode()})
	}
	return out
}

// parseRecord reads a record from the map's entries. A map without an
// epoch holds no record (a fresh or restarted HAProxy). Keys cutover does
// not know are left alone: the map may be shared with HAProxy's config.
func parseRecord(m map[string]string) (record, error) {
	r := newRecord()
	e, ok := m[keyEpoch]
	if !ok {
		return r, nil
	}
	r.Present = true
	var err error
	if r.Epoch, err = strconv.ParseUint(e, 10, 64); err != nil {
		return r, fmt.Errorf("map entry %s: %q is not an epoch", keyEpoch, e)
	}
	if w, err := url.ParseQuery(m[keyWriter]); err == nil {
		r.Writer = w.Get("w")
	}
	for k, v := range m {
		switch {
		case strings.HasPrefix(k, prefixB):
			q, err := url.ParseQuery(v)
			if err != nil {
				return r, fmt.Errorf("map entry %s: %w", k, err)
			}
			w, err := strconv.Atoi(q.Get("weight"))
			if err != nil {
				return r, fmt.Errorf("map entry %s: weight %q is not a number", k, q.Get("weight"))
			}
			id := strings.TrimPrefix(k, prefixB)
			r.Backends[id] = engine.Backend{ID: id, Addr: q.Get("addr"), Version: q.Get("version"), Weight: w}
		case strings.HasPrefix(k, prefixR):
			q, err := url.ParseQuery(v)
			if err != nil {
				return r, fmt.Errorf("map entry %s: %w", k, err)
			}
			r.Retiring[strings.TrimPrefix(k, prefixR)] = q.Get("version")
		case strings.HasPrefix(k, prefixTotal):
			ver, err := url.QueryUnescape(strings.TrimPrefix(k, prefixTotal))
			if err != nil {
				return r, fmt.Errorf("map entry %s: %w", k, err)
			}
			q, err := url.ParseQuery(v)
			if err != nil {
				return r, fmt.Errorf("map entry %s: %w", k, err)
			}
			n := func(f string) int64 { x, _ := strconv.ParseInt(q.Get(f), 10, 64); return x }
			r.Retired[ver] = engine.Totals{Requests: n("requests"), Class2xx: n("2xx"), Class3xx: n("3xx"),
				Class4xx: n("4xx"), Class5xx: n("5xx"), ProxyErrors: n("proxy_errors"), Retries: n("retries")}
		}
	}
	return r, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
