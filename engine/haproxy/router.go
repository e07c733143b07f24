package haproxy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutover/cutover/engine"
)

// Options say which HAProxy, backend and map a Router drives.
type Options struct {
	// Name names the router in messages and the ledger files
	// (haproxy-NAME.lock, haproxy-NAME.json in StateDir).
	Name string
	// Socket is HAProxy's runtime API, a unix socket declared with
	// `stats socket PATH level admin`.
	Socket string
	// Backend is the HAProxy backend whose servers are the route table.
	// Cutover owns it: it must use a dynamic balance algorithm
	// (roundrobin, leastconn, random, first) and have no enabled servers of
	// HAProxy's config.
	Backend string
	// Map is the map file cutover keeps its record in, as HAProxy's
	// config names it (see `show map`).
	Map string
	// StateDir holds the ledger: the lock that serializes this host's
	// writers and the last table applied.
	StateDir string
	// PollInterval is how often WaitDrained reads HAProxy (default 25ms).
	PollInterval time.Duration
}

// Router drives one HAProxy backend through the runtime API. It
// implements engine.Router.
type Router struct {
	opts     Options
	rt       runtime
	lockPath string
	lastPath string
}

var _ engine.Router = (*Router)(nil)

// DefaultPollInterval is how often WaitDrained reads HAProxy's sessions.
const DefaultPollInterval = 25 * time.Millisecond

// New makes a Router. It does not connect: Ping checks that HAProxy
// answers and is set up for cutover.
func New(opts Options) (*Router, error) {
	var missing []string
	for _, f := range []struct{ name, v string }{{"socket", opts.Socket}, {"backend", opts.Backend}, {"map", opts.Map}, {"state directory", opts.StateDir}, {"name", opts.Name}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("haproxy router: missing %s", strings.Join(missing, ", "))
	}
	if !serverNameRE.MatchString(opts.Backend) {
		return nil, fmt.Errorf("haproxy router %s: %q is not an HAProxy backend name", opts.Name, opts.Backend)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	return &Router{
		opts:     opts,
		rt:       runtime{socket: opts.Socket},
		lockPath: filepath.Join(opts.StateDir, "haproxy-"+opts.Name+".lock"),
		lastPath: filepath.Join(opts.StateDir, "haproxy-"+opts.Name+".json"),
	}, nil
}

// Close releases nothing: every command has its own connection. It is
// here so callers close routers alike.
func (r *Router) Close() error { return nil }

// Describe says where the router is, for messages: "HAProxy backend web at
// unix:/run/haproxy/admin.sock".
func (r *Router) Describe() string {
	return fmt.Sprintf("HAProxy backend %s at unix:%s", r.opts.Backend, r.opts.Socket)
}

// Ping checks that HAProxy answers on the socket at admin level, has the
// backend and has loaded the map: what every other call needs.
func (r *Router) Ping(ctx context.Context) error {
	in, err := r.rt.info(ctx)
	if err != nil {
		return err
	}
	if _, err := r.rt.servers(ctx, r.opts.Backend); err != nil {
		return fmt.Errorf("HAProxy %s has no backend %s: %w", in.Version, r.opts.Backend, err)
	}
	if _, err := r.rt.mapEntries(ctx, r.opts.Map); err != nil {
		return fmt.Errorf("HAProxy %s: map %s: %w", in.Version, r.opts.Map, err)
	}
	return nil
}

// view is one reading of HAProxy: the process, cutover's record in the
// map and the backend's servers.
type view struct {
	info    info
	rec     record
	servers map[string]server
}

func (r *Router) read(ctx context.Context) (view, error) {
	var v view
	var err error
	if v.info, err = r.rt.info(ctx); err != nil {
		return v, err
	}
	m, err := r.rt.mapEntries(ctx, r.opts.Map)
	if err != nil {
		return v, err
	}
	if v.rec, err = parseRecord(m); err != nil {
		return v, fmt.Errorf("HAProxy map %s: %w", r.opts.Map, err)
	}
	list, err := r.rt.servers(ctx, r.opts.Backend)
	if err != nil {
		return v, err
	}
	v.servers = make(map[string]server, len(list))
	for _, s := range list {
		v.servers[s.Name] = s
	}
	return v, nil
}

// RestartedError says HAProxy is not the process that took cutover's last
// table and no longer holds it: a restart or reload dropped every runtime
// change (servers, weights, cutover's record), and HAProxy now routes by
// its config file alone. Nothing is applied on top of that silently: the
// release fails its step, and an operator restores the table.
type RestartedError struct {
	Router    string
	Was, Now  string // identities of the HAProxy processes
	Uptime    time.Duration
	Epoch     uint64 // of the lost table
	Backends  int
	HeldByMap bool   // the map still holds a record (an older epoch)
	MapEpoch  uint64 // its epoch
}

func (e *RestartedError) Error() string {
	held := "it holds no table of cutover's"
	if e.HeldByMap {
		held = fmt.Sprintf("it holds only an older table (epoch %d)", e.MapEpoch)
	}
	what := fmt.Sprintf("HAProxy restarted (%s, now %s, up %s)", e.Was, e.Now, e.Uptime)
	if e.Was == e.Now {
		what = fmt.Sprintf("HAProxy (%s) lost cutover's record: its map was cleared, or it restarted within the second", e.Now)
	}
	return fmt.Sprintf("%s: cutover's table of epoch %d (%d backends) is gone from it and %s; "+
		"it routes by its config file alone. `cutover router restore %s` applies that table again; then resume or roll back",
		what, e.Epoch, e.Backends, held, e.Router)
}

// DriftError says HAProxy's servers are not what cutover's record in the
// map says they are: an apply was cut short, or someone changed the
// backend by hand. Each difference is listed.
type DriftError struct {
	Backend     string
	Epoch       uint64
	Differences []string
}

func (e *DriftError) Error() string {
	return fmt.Sprintf("HAProxy backend %s differs from cutover's table of epoch %d: %s", e.Backend, e.Epoch, strings.Join(e.Differences, "; "))
}

// restarted compares HAProxy with the ledger's last apply: a different
// process that holds no table as new as the last one lost it.
func (r *Router) restarted(v view) error {
	last, ok, err := r.readLast()
	if err != nil {
		return err
	}
	if !ok || len(last.Table.Backends) == 0 && last.Table.Epoch == 0 {
		return nil
	}
	if v.rec.Present && v.rec.Epoch >= last.Table.Epoch {
		return nil // holds it, or a newer one (a restore, another host)
	}
	// The record is gone or older whatever the identity says: a process
	// restarted in a container is pid 1 again, maybe within the second.
	return &RestartedError{Router: r.opts.Name, Was: last.Identity, Now: v.info.identity(), Uptime: v.info.Uptime,
		Epoch: last.Table.Epoch, Backends: len(last.Table.Backends), HeldByMap: v.rec.Present, MapEpoch: v.rec.Epoch}
}

// drift lists how the servers differ from the record. Servers that are
// neither in the table nor retiring are allowed only in maintenance: a
// disabled server of the config, or one an interrupted apply added.
func (r *Router) drift(v view) error {
	want := serverWeights(v.rec.table())
	var diffs []string
	for _, id := range sortedKeys(v.rec.Backends) {
		b := v.rec.Backends[id]
		s, ok := v.servers[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("server %s (%s) is missing", id, b.Addr))
			continue
		case !sameAddr(s, b.Addr):
			diffs = append(diffs, fmt.Sprintf("server %s sends to %s, the table says %s", id, serverAddr(s), b.Addr))
		}
		if s.Weight != want[id] {
			diffs = append(diffs, fmt.Sprintf("server %s has weight %d, the table's %d is %d in HAProxy", id, s.Weight, b.Weight, want[id]))
		}
		if s.maint() || s.drain() {
			diffs = append(diffs, fmt.Sprintf("server %s is in %s", id, adminWord(s)))
		}
	}
	for _, name := range sortedKeys(v.servers) {
		s := v.servers[name]
		if _, ok := v.rec.Backends[name]; ok || s.maint() {
			continue
		}
		why := "is not in cutover's table"
		if _, ok := v.rec.Retiring[name]; ok {
			why = "left cutover's table but is out of maintenance"
		}
		diffs = append(diffs, fmt.Sprintf("server %s (%s) %s and takes traffic", name, serverAddr(s), why))
	}
	if len(diffs) > 0 {
		return &DriftError{Backend: r.opts.Backend, Epoch: v.rec.Epoch, Differences: diffs}
	}
	return nil
}

func serverAddr(s server) string {
	if s.Addr == "-" && s.FQDN != "-" {
		return fmt.Sprintf("name %s, no IP", s.FQDN)
	}
	return s.hostPort()
}

func adminWord(s server) string {
	if s.maint() {
		return "maintenance"
	}
	return "drain"
}

// State reads cutover's table back from HAProxy, checked against the
// servers HAProxy actually has, and the traffic figures of `show stat`.
// It fails when HAProxy restarted since the last apply (RestartedError)
// or its servers differ from the table (DriftError).
//
// Reads take no lock: one that overlaps an apply of this host may see the
// new record beside the old servers, and only then is it made again under
// the ledger's lock, after the apply. A reader polling State therefore
// never holds a writer up.
func (r *Router) State(ctx context.Context) (engine.RouteTable, engine.Stats, error) {
	v, err := r.consistentView(ctx)
	if err != nil {
		return engine.RouteTable{}, engine.Stats{}, err
	}
	st, err := r.rt.stats(ctx, r.opts.Backend)
	if err != nil {
		return engine.RouteTable{}, engine.Stats{}, fmt.Errorf("read %s: %w", r.Describe(), err)
	}
	return v.rec.table(), statsOf(v, st), nil
}

// consistentView reads HAProxy and checks it against the ledger and the
// record, again under the ledger's lock if the first reading differs.
func (r *Router) consistentView(ctx context.Context) (view, error) {
	check := func() (view, error) {
		v, err := r.read(ctx)
		if err != nil {
			return v, fmt.Errorf("read %s: %w", r.Describe(), err)
		}
		if err := r.restarted(v); err != nil {
			return v, err
		}
		return v, r.drift(v)
	}
	v, err := check()
	if err == nil {
		return v, nil
	}
	unlock, lerr := r.lock(ctx, false)
	if lerr != nil {
		return v, err
	}
	defer unlock()
	return check()
}

// WaitDrained returns once none of the servers ids has a session or a
// queued request (HAProxy's scur and qcur); a server HAProxy no longer has
// has none.
func (r *Router) WaitDrained(ctx context.Context, ids []string) error {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	tick := time.NewTicker(r.opts.PollInterval)
	defer tick.Stop()
	var busy []string
	stillBusy := func(err error) error {
		return fmt.Errorf("wait for drain: still busy: %s: %w", strings.Join(busy, ", "), err)
	}
	for {
		st, err := r.rt.stats(ctx, r.opts.Backend)
		if err != nil {
			if cerr := expired(ctx); cerr != nil {
				err = cerr // the time ran out during a read
				if len(busy) > 0 {
					return stillBusy(err)
				}
			}
			return fmt.Errorf("wait for %s to drain: %w", strings.Join(ids, ", "), err)
		}
		busy = busy[:0]
		for _, id := range sortedKeys(st) {
			if s := st[id]; want[id] && s.Cur+s.Queued > 0 {
				busy = append(busy, fmt.Sprintf("%s (%d in flight)", id, s.Cur+s.Queued))
			}
		}
		if len(busy) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return stillBusy(ctx.Err())
		case <-tick.C:
		}
	}
}

// expired is ctx's error, or DeadlineExceeded as soon as its deadline has
// passed: a context's timer may not have fired yet when a read already
// failed on the deadline.
func expired(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// staleEpoch is the fence: a table older than HAProxy's record, or of
// its epoch but from another writer, is refused.
func staleEpoch(rec record, t engine.RouteTable) error {
	switch {
	case t.Epoch < rec.Epoch:
		return fmt.Errorf("table epoch %d is older than HAProxy's epoch %d (writer %s): %w", t.Epoch, rec.Epoch, orNone(rec.Writer), engine.ErrStaleEpoch)
	case t.Epoch == rec.Epoch && rec.Writer != "" && t.Writer != rec.Writer:
		return fmt.Errorf("epoch %d belongs to writer %s, not %s: %w", rec.Epoch, rec.Writer, orNone(t.Writer), engine.ErrStaleEpoch)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// ErrNothingToRestore is returned by Restore when HAProxy holds the table
// cutover recorded.
var ErrNothingToRestore = errors.New("nothing to restore")
