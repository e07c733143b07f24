package enginetest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/cutover/cutover/engine"
)

// Journal is an in-memory engine.Journal with the same rules as the bbolt
// one (the contract tests in engine/journal run against both). Host and
// Alive decide whether a same-host owner is dead.
type Journal struct {
	Trace *Trace
	Host  string
	Alive func(engine.Owner) bool

	mu      sync.Mutex
	records map[string]engine.ReleaseRecord
	order   []string
	events  map[string][]engine.Event
	leases  map[string]engine.Lease
	fail    error
	// BeforeWrite, if set, runs at the start of each write outside the
	// lock: a test's other writer can act between two writes.
	BeforeWrite func(kind string)
}

// NewJournal returns an empty journal.
func NewJournal(trace *Trace) *Journal {
	return &Journal{Trace: trace, records: map[string]engine.ReleaseRecord{},
		events: map[string][]engine.Event{}, leases: map[string]engine.Lease{}}
}

var _ engine.Journal = (*Journal)(nil)

// Fail makes every write fail with err (nil to heal).
func (j *Journal) Fail(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.fail = err
}

func (j *Journal) before(kind string) {
	if j.BeforeWrite != nil {
		j.BeforeWrite(kind)
	}
}

// Begin stores or reopens rec, takes the lease and appends evs.
func (j *Journal) Begin(ctx context.Context, rec engine.ReleaseRecord, now time.Time, takeover bool, evs ...engine.Event) error {
	j.before("begin")
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail != nil {
		return j.fail
	}
	l, held := j.leases[rec.Service]
	other := l.Release != rec.ID || !l.Owner.Same(rec.Owner)
	if held && other && !takeover && l.Live(now, j.Host, j.Alive) {
		return &engine.LeaseHeldError{Lease: l, Now: now}
	}
	if old, ok := j.records[rec.ID]; ok {
		old.State, old.Owner, old.Ended, old.Epoch, old.Error = engine.ReleaseRunning, rec.Owner, time.Time{}, rec.Epoch, ""
		old.From, old.Steps = rec.From, rec.Steps
		rec = old
	} else {
		j.order = append(j.order, rec.ID)
	}
	j.records[rec.ID] = rec
	j.leases[rec.Service] = engine.Lease{Service: rec.Service, Release: rec.ID, Owner: rec.Owner, Since: now, Heartbeat: now}
	j.appendLocked(evs)
	return nil
}

// Append stores evs.
func (j *Journal) Append(ctx context.Context, evs ...engine.Event) error {
	return j.append(nil, evs)
}

// AppendFenced stores evs only while their release holds the lease for owner.
func (j *Journal) AppendFenced(ctx context.Context, owner engine.Owner, evs ...engine.Event) error {
	return j.append(&owner, evs)
}

// append stores evs, checking first, when owner is not nil, that their
// release holds its lease for owner.
func (j *Journal) append(owner *engine.Owner, evs []engine.Event) error {
	if len(evs) == 0 {
		return nil
	}
	j.before(string(evs[0].Kind))
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail != nil {
		return j.fail
	}
	if owner != nil {
		l, held := j.leases[evs[0].Service]
		if !held || l.Release != evs[0].Release || !l.Owner.Same(*owner) {
			return engine.ErrLeaseLost
		}
	}
	j.appendLocked(evs)
	return nil
}

func (j *Journal) appendLocked(evs []engine.Event) {
	for _, ev := range evs {
		j.Trace.Add("journal:" + string(ev.Kind))
		j.events[ev.Release] = append(j.events[ev.Release], ev)
		if rec, ok := j.records[ev.Release]; ok {
			rec.Fold(ev)
			j.records[ev.Release] = rec
		}
	}
}

// Heartbeat renews the lease.
func (j *Journal) Heartbeat(ctx context.Context, id string, owner engine.Owner, now time.Time) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	rec, ok := j.records[id]
	if !ok {
		return engine.ErrNotFound
	}
	l, ok := j.leases[rec.Service]
	if !ok || l.Release != id || !l.Owner.Same(owner) {
		return engine.ErrLeaseLost
	}
	l.Heartbeat = now
	j.leases[rec.Service] = l
	return nil
}

// End records the outcome and releases the lease if held.
func (j *Journal) End(ctx context.Context, id string, owner engine.Owner, state engine.ReleaseState, now time.Time, lastErr string) error {
	j.before("end")
	j.mu.Lock()
	defer j.mu.Unlock()
	rec, ok := j.records[id]
	if !ok {
		return engine.ErrNotFound
	}
	l, held := j.leases[rec.Service]
	if held && l.Release == id && !l.Owner.Same(owner) {
		return nil
	}
	if rec.State == engine.ReleaseRolledBack && state == engine.ReleaseTakenOver {
		state, lastErr = rec.State, rec.Error
	}
	rec.State, rec.Ended, rec.Error = state, now, lastErr
	j.records[id] = rec
	if held && l.Release == id {
		delete(j.leases, rec.Service)
	}
	return nil
}

// Releases lists records newest first.
func (j *Journal) Releases(ctx context.Context, service string, limit int) ([]engine.ReleaseRecord, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []engine.ReleaseRecord
	for i := len(j.order) - 1; i >= 0; i-- {
		if rec := j.records[j.order[i]]; service == "" || rec.Service == service {
			out = append(out, rec)
		}
	}
	// Newest first; records begun at the same (fake) time, the later first.
	sort.SliceStable(out, func(a, b int) bool { return out[a].Started.After(out[b].Started) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Release returns one record.
func (j *Journal) Release(ctx context.Context, id string) (engine.ReleaseRecord, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	rec, ok := j.records[id]
	if !ok {
		return engine.ReleaseRecord{}, engine.ErrNotFound
	}
	return rec, nil
}

// Events returns a release's events in order.
func (j *Journal) Events(ctx context.Context, id string) ([]engine.Event, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]engine.Event(nil), j.events[id]...), nil
}

// Active returns the service's lease.
func (j *Journal) Active(ctx context.Context, service string) (engine.Lease, bool, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	l, ok := j.leases[service]
	return l, ok, nil
}

// SetLease installs a lease directly, as another process would hold it.
func (j *Journal) SetLease(l engine.Lease) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.leases[l.Service] = l
}
