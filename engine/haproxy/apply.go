package haproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/cutover/cutover/engine"
)

// Apply makes HAProxy's backend the table: servers added, weighted,
// re-addressed and deleted through the runtime API, cutover's record in
// the map replaced, and all of it read back from `show servers state`.
//
// Fencing: the whole apply runs under the ledger's exclusive lock, so the
// cutover processes of this host (they share the state directory, as
// they share the journal and its lease) cannot interleave between the
// epoch check and the writes. The epoch itself is read from and written
// to HAProxy's map, so a writer sees the epoch whoever wrote it.
//
// Nothing changes when the table is refused: new servers are first added
// in maintenance and read back, and only once HAProxy took every one of
// them (an IP, the port, the weight) does any traffic move. A refusal
// names the backend and quotes HAProxy.
func (r *Router) Apply(ctx context.Context, t engine.RouteTable) error {
	if err := checkTable(t); err != nil {
		return fmt.Errorf("apply route table (epoch %d): %w", t.Epoch, err)
	}
	unlock, err := r.lock(ctx, true)
	if err != nil {
		return err
	}
	defer unlock()
	v, err := r.read(ctx)
	if err != nil {
		return fmt.Errorf("apply route table (epoch %d): read %s: %w", t.Epoch, r.Describe(), err)
	}
	if err := r.restarted(v); err != nil {
		return fmt.Errorf("apply route table (epoch %d): %w", t.Epoch, err)
	}
	if err := staleEpoch(v.rec, t); err != nil {
		return fmt.Errorf("apply route table (epoch %d): %w", t.Epoch, err)
	}
	if err := r.converge(ctx, v, t); err != nil {
		return fmt.Errorf("apply route table (epoch %d) to %s: %w", t.Epoch, r.Describe(), err)
	}
	return nil
}

// Restore applies cutover's table again to an HAProxy that lost it: after
// a restart, the last table this host applied (with its epoch and
// writer, so the release that wrote it can go on); when the servers
// drifted from the record in the map, the record's table (also when that
// record is newer than this host's last table: it is the latest word).
// It says what it did, or returns ErrNothingToRestore.
func (r *Router) Restore(ctx context.Context) (string, error) {
	unlock, err := r.lock(ctx, true)
	if err != nil {
		return "", err
	}
	defer unlock()
	v, err := r.read(ctx)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", r.Describe(), err)
	}
	var t engine.RouteTable
	var what string
	var restart *RestartedError
	switch err := r.restarted(v); {
	case errors.As(err, &restart):
		last, _, err := r.readLast()
		if err != nil {
			return "", err
		}
		t = last.Table
		what = fmt.Sprintf("HAProxy restarted (%s, now %s): applied the last table again, epoch %d (%d backends)", restart.Was, restart.Now, t.Epoch, len(t.Backends))
	case err != nil:
		return "", err
	default:
		derr := r.drift(v)
		if derr == nil {
			return "", fmt.Errorf("%w: %s holds cutover's table of epoch %d as recorded", ErrNothingToRestore, r.Describe(), v.rec.Epoch)
		}
		t = v.rec.table()
		what = fmt.Sprintf("the servers had drifted (%v): applied the table of epoch %d again", derr, t.Epoch)
	}
	if err := checkTable(t); err != nil {
		return "", err
	}
	if err := r.converge(ctx, v, t); err != nil {
		return "", fmt.Errorf("restore %s: %w", r.Describe(), err)
	}
	return what, nil
}

// converge makes the backend the table t, from the servers in v. See
// Apply for the order of things.
func (r *Router) converge(ctx context.Context, v view, t engine.RouteTable) error {
	be := r.opts.Backend
	weights := serverWeights(t)
	want := make(map[string]engine.Backend, len(t.Backends))
	for _, b := range t.Backends {
		want[b.ID] = b
	}
	ours := func(name string) bool {
		_, inTable := v.rec.Backends[name]
		_, retiring := v.rec.Retiring[name]
		return inTable || retiring
	}

	// A server that is not cutover's but takes traffic is refused; one in
	// maintenance that a new backend needs the name of is the leftover of
	// an apply cut short, and goes.
	var leftovers []string
	for _, name := range sortedKeys(v.servers) {
		s := v.servers[name]
		if ours(name) {
			continue
		}
		if !s.maint() {
			return fmt.Errorf("server %s (%s) is not cutover's and takes traffic: cutover must own backend %s (remove the server from HAProxy's config, or put it in maintenance)", name, serverAddr(s), be)
		}
		if _, ok := want[name]; ok {
			leftovers = append(leftovers, name)
		}
	}
	for _, name := range leftovers {
		if _, err := r.rt.expect(ctx, "del server "+be+"/"+name, isDeleted); err != nil {
			return fmt.Errorf("remove server %s, left by an apply cut short: %w", name, err)
		}
		delete(v.servers, name)
	}

	// 1. New servers, in maintenance: no traffic moves yet.
	var added []string
	undo := func(cause error) error {
		var errs []error
		for _, name := range added {
			if _, err := r.rt.expect(ctx, "del server "+be+"/"+name, isDeleted); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w (and removing the servers it added failed: %w)", cause, errors.Join(errs...))
		}
		return cause
	}
	var readdress []string
	for _, b := range t.Backends {
		s, exists := v.servers[b.ID]
		if !exists {
			cmd := fmt.Sprintf("add server %s/%s %s weight %d disabled", be, b.ID, b.Addr, weights[b.ID])
			if _, err := r.rt.expect(ctx, cmd, func(a string) bool { return a == "New server registered." }); err != nil {
				return undo(fmt.Errorf("%w: backend %s at %s: %w", engine.ErrInvalidTable, b.ID, b.Addr, err))
			}
			added = append(added, b.ID)
			continue
		}
		if !sameAddr(s, b.Addr) {
			host, _, _ := net.SplitHostPort(b.Addr)
			if net.ParseIP(host) == nil {
				return undo(fmt.Errorf("%w: backend %s: HAProxy moves a server only to an IP address, not to %s", engine.ErrInvalidTable, b.ID, b.Addr))
			}
			readdress = append(readdress, b.ID)
		}
	}
	if len(added) > 0 {
		list, err := r.rt.servers(ctx, be)
		if err != nil {
			return undo(err)
		}
		got := map[string]server{}
		for _, s := range list {
			got[s.Name] = s
		}
		var problems []string
		for _, id := range added {
			s, b := got[id], want[id]
			switch {
			case s.Name == "":
				problems = append(problems, fmt.Sprintf("backend %s: HAProxy does not list the server it registered", id))
			case net.ParseIP(s.Addr) == nil:
				problems = append(problems, fmt.Sprintf("backend %s: HAProxy took %s as a name (%s) and has no IP for it: HAProxy 2.6 does not resolve the names of servers added at runtime; give an IP address", id, b.Addr, s.FQDN))
			case !sameAddr(s, b.Addr):
				problems = append(problems, fmt.Sprintf("backend %s: HAProxy sends to %s, not %s", id, s.hostPort(), b.Addr))
			case s.Weight != weights[id]:
				problems = append(problems, fmt.Sprintf("backend %s: HAProxy has weight %d, not %d", id, s.Weight, weights[id]))
			}
		}
		if len(problems) > 0 {
			return undo(fmt.Errorf("%w: HAProxy did not take the new servers as given: %s", engine.ErrInvalidTable, strings.Join(problems, "; ")))
		}
	}

	// 2. The record: the epoch is claimed before any traffic moves.
	next := newRecord()
	next.Present, next.Epoch, next.Writer = true, t.Epoch, t.Writer
	for _, b := range t.Backends {
		next.Backends[b.ID] = b
	}
	for k, tot := range v.rec.Retired {
		next.Retired[k] = tot
	}
	var leaving []string
	for _, name := range sortedKeys(v.servers) {
		if _, stays := want[name]; stays || !ours(name) {
			continue
		}
		leaving = append(leaving, name)
		ver := v.rec.Retiring[name]
		if b, ok := v.rec.Backends[name]; ok {
			ver = b.Version
		}
		next.Retiring[name] = ver
	}
	if err := r.rt.replaceMap(ctx, r.opts.Map, next.entries()); err != nil {
		return undo(fmt.Errorf("write cutover's record to map %s: %w", r.opts.Map, err))
	}

	// 3. Traffic, in one batch: addresses, then every weight that grows
	// and every server that joins, then every weight that shrinks and
	// every server that leaves. No moment in between has less capacity
	// than the old table or the new one.
	for _, id := range readdress {
		host, port, _ := net.SplitHostPort(want[id].Addr)
		cmd := fmt.Sprintf("set server %s/%s addr %s port %s", be, id, host, port)
		if _, err := r.rt.expect(ctx, cmd, func(a string) bool { return strings.Contains(a, "changed") || strings.Contains(a, "no need to change") }); err != nil {
			return fmt.Errorf("move server %s to %s: %w", id, want[id].Addr, err)
		}
	}
	var grow, shrink []string
	for _, b := range t.Backends {
		s, exists := v.servers[b.ID]
		w := weights[b.ID]
		switch {
		case !exists:
			grow = append(grow, fmt.Sprintf("set server %s/%s state ready", be, b.ID))
		case w > s.Weight:
			grow = append(grow, fmt.Sprintf("set weight %s/%s %d", be, b.ID, w))
		case w < s.Weight:
			shrink = append(shrink, fmt.Sprintf("set weight %s/%s %d", be, b.ID, w))
		}
		if exists && (s.maint() || s.drain()) {
			grow = append(grow, fmt.Sprintf("set server %s/%s state ready", be, b.ID))
		}
	}
	for _, name := range leaving {
		if !v.servers[name].maint() {
			shrink = append(shrink, fmt.Sprintf("set server %s/%s state maint", be, name))
		}
	}
	if err := r.rt.quiet(ctx, append(grow, shrink...)...); err != nil {
		return fmt.Errorf("set weights: %w", err)
	}

	// 4. Servers that left: deleted once HAProxy lets them go (nothing in
	// flight), their counters kept in the record for their version.
	if len(leaving) > 0 {
		st, err := r.rt.stats(ctx, be)
		if err != nil {
			return err
		}
		deleted := 0
		for _, name := range leaving {
			s := st[name]
			if s.Cur+s.Queued > 0 {
				continue // still busy: retiring until a later apply
			}
			if _, err := r.rt.expect(ctx, "del server "+be+"/"+name, isDeleted); err != nil {
				continue // idle connections, most often: a later apply retries
			}
			ver := next.Retiring[name]
			tot := next.Retired[ver]
			addTotals(&tot, totalsOf(s))
			next.Retired[ver] = tot
			delete(next.Retiring, name)
			deleted++
		}
		if deleted > 0 {
			if err := r.rt.replaceMap(ctx, r.opts.Map, next.entries()); err != nil {
				return fmt.Errorf("record the counters of deleted servers in map %s: %w", r.opts.Map, err)
			}
		}
	}

	// 5. Read back: HAProxy has what the table says, or the step fails.
	after, err := r.read(ctx)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if after.info.identity() != v.info.identity() {
		return fmt.Errorf("HAProxy restarted during the apply (%s, now %s): its servers are what its config file says", v.info.identity(), after.info.identity())
	}
	if err := r.drift(after); err != nil {
		return fmt.Errorf("read back: HAProxy did not take the table: %w", err)
	}
	if after.rec.Epoch != t.Epoch || after.rec.Writer != t.Writer {
		return fmt.Errorf("read back: HAProxy's map holds epoch %d of %s, not %d of %s: another writer interleaved: %w",
			after.rec.Epoch, orNone(after.rec.Writer), t.Epoch, orNone(t.Writer), engine.ErrStaleEpoch)
	}
	return r.writeLast(lastApply{Identity: v.info.identity(), Table: t, At: time.Now()})
}

func isDeleted(a string) bool { return a == "Server deleted." }
