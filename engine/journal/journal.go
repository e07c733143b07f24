// Package journal is the durable engine.Journal: a bbolt file that several
// cutover processes share. Each operation opens the file, takes bbolt's
// flock (shared for reads, exclusive for writes, waiting up to LockTimeout)
// and closes it again, so `cutover rollback` and `cutover status` can read
// and write while `cutover deploy` runs. Every write is fsync'd by bbolt
// before the call returns.
package journal

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/cutover/cutover/engine"
)

// LockTimeout is how long an operation waits for another process's lock.
const LockTimeout = 5 * time.Second

var (
	bucketReleases = []byte("releases")
	bucketEvents   = []byte("events")
	bucketLeases   = []byte("leases")
)

// Journal is a bbolt-backed engine.Journal.
type Journal struct {
	path string
	// Host is this machine's name: a lease held by a process on it lives
	// exactly as long as that process. Alive reports whether a local
	// owner's process still runs.
	Host  string
	Alive func(engine.Owner) bool
}

var _ engine.Journal = (*Journal)(nil)

// Open creates the journal file (and its directory) if needed and checks
// that it can be opened.
func Open(path string) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("journal: create directory: %w", err)
	}
	host, _ := os.Hostname()
	j := &Journal{path: path, Host: host, Alive: OwnerAlive}
	// Most opens find the buckets there: a read costs no fsync, and
	// `cutover rollback` opens the journal on its way to the swap.
	ready := false
	if _, err := os.Stat(path); err == nil {
		_ = j.view(func(tx *bolt.Tx) error {
			ready = tx.Bucket(bucketReleases) != nil && tx.Bucket(bucketEvents) != nil && tx.Bucket(bucketLeases) != nil
			return nil
		})
	}
	if ready {
		return j, nil
	}
	err := j.update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketReleases, bucketEvents, bucketLeases} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

// Path is the journal file.
func (j *Journal) Path() string { return j.path }

// ProcessAlive reports whether a process exists on this host (signal 0 is
// delivered or refused for permission): how a lease's owner is checked.
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// OwnerAlive reports whether a lease owner on this host still runs: its
// pid exists and, where the lease recorded when the process started, the
// pid was not reused by another process since.
func OwnerAlive(o engine.Owner) bool {
	if !ProcessAlive(o.PID) {
		return false
	}
	return o.Start == 0 || engine.ProcessStart(o.PID) == o.Start
}

func (j *Journal) open(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(j.path, 0o600, &bolt.Options{Timeout: LockTimeout, ReadOnly: readOnly})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("journal %s: locked by another process for over %s: %w", j.path, LockTimeout, err)
		}
		return nil, fmt.Errorf("journal %s: open: %w", j.path, err)
	}
	return db, nil
}

func (j *Journal) update(fn func(*bolt.Tx) error) error {
	db, err := j.open(false)
	if err != nil {
		return err
	}
	if err := db.Update(fn); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

func (j *Journal) view(fn func(*bolt.Tx) error) error {
	db, err := j.open(true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

func getJSON(b *bolt.Bucket, key string, v any) (bool, error) {
	if b == nil {
		return false, nil
	}
	data := b.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	return true, json.Unmarshal(data, v)
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// Begin stores or reopens rec and takes the service's lease.
func (j *Journal) Begin(ctx context.Context, rec engine.ReleaseRecord, now time.Time, takeover bool, evs ...engine.Event) error {
	return j.update(func(tx *bolt.Tx) error {
		leases := tx.Bucket(bucketLeases)
		var l engine.Lease
		held, err := getJSON(leases, rec.Service, &l)
		if err != nil {
			return fmt.Errorf("journal: read lease of %s: %w", rec.Service, err)
		}
		// Another live process holds the lease: for another release, or for
		// this very release (two processes would drive it at once).
		other := l.Release != rec.ID || !l.Owner.Same(rec.Owner)
		if held && other && !takeover && l.Live(now, j.Host, j.Alive) {
			return &engine.LeaseHeldError{Lease: l, Now: now}
		}
		rels := tx.Bucket(bucketReleases)
		var old engine.ReleaseRecord
		found, err := getJSON(rels, rec.ID, &old)
		if err != nil {
			return fmt.Errorf("journal: read release %s: %w", rec.ID, err)
		}
		if found { // resume: keep the history, take the new run's owner
			old.State, old.Owner, old.Ended, old.Epoch, old.Error = engine.ReleaseRunning, rec.Owner, time.Time{}, rec.Epoch, ""
			old.From, old.Steps = rec.From, rec.Steps
			rec = old
		}
		if err := putJSON(rels, rec.ID, rec); err != nil {
			return fmt.Errorf("journal: write release %s: %w", rec.ID, err)
		}
		if _, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists([]byte(rec.ID)); err != nil {
			return err
		}
		if err := putJSON(leases, rec.Service, engine.Lease{Service: rec.Service, Release: rec.ID, Owner: rec.Owner, Since: now, Heartbeat: now}); err != nil {
			return err
		}
		return appendAll(tx, evs)
	})
}

// Append stores evs and folds their state and step into their records.
func (j *Journal) Append(ctx context.Context, evs ...engine.Event) error {
	if len(evs) == 0 {
		return nil
	}
	return j.update(func(tx *bolt.Tx) error { return appendAll(tx, evs) })
}

// AppendFenced stores evs only while their release holds the service's
// lease for owner, checked in the same transaction: the journal's lock
// orders it against a takeover's Begin.
func (j *Journal) AppendFenced(ctx context.Context, owner engine.Owner, evs ...engine.Event) error {
	if len(evs) == 0 {
		return nil
	}
	return j.update(func(tx *bolt.Tx) error {
		if err := holds(tx, evs[0].Service, evs[0].Release, owner); err != nil {
			return err
		}
		return appendAll(tx, evs)
	})
}

// holds returns engine.ErrLeaseLost unless release holds service's lease for owner.
func holds(tx *bolt.Tx, service, release string, owner engine.Owner) error {
	var l engine.Lease
	held, err := getJSON(tx.Bucket(bucketLeases), service, &l)
	if err != nil {
		return fmt.Errorf("journal: read lease of %s: %w", service, err)
	}
	if !held || l.Release != release || !l.Owner.Same(owner) {
		return engine.ErrLeaseLost
	}
	return nil
}

func appendAll(tx *bolt.Tx, evs []engine.Event) error {
	rels := tx.Bucket(bucketReleases)
	for _, ev := range evs {
		b, err := tx.Bucket(bucketEvents).CreateBucketIfNotExists([]byte(ev.Release))
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], seq)
		if err := b.Put(key[:], data); err != nil {
			return err
		}
		var rec engine.ReleaseRecord
		found, err := getJSON(rels, ev.Release, &rec)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		rec.Fold(ev)
		if err := putJSON(rels, rec.ID, rec); err != nil {
			return err
		}
	}
	return nil
}

// Heartbeat renews the lease, or returns engine.ErrLeaseLost.
func (j *Journal) Heartbeat(ctx context.Context, id string, owner engine.Owner, now time.Time) error {
	return j.update(func(tx *bolt.Tx) error {
		rec, l, held, err := recordAndLease(tx, id)
		if err != nil {
			return err
		}
		if !held || l.Release != id || !l.Owner.Same(owner) {
			return engine.ErrLeaseLost
		}
		l.Heartbeat = now
		return putJSON(tx.Bucket(bucketLeases), rec.Service, l)
	})
}

// recordAndLease reads release id's record and its service's lease.
func recordAndLease(tx *bolt.Tx, id string) (rec engine.ReleaseRecord, l engine.Lease, held bool, err error) {
	found, err := getJSON(tx.Bucket(bucketReleases), id, &rec)
	if err != nil {
		return rec, l, false, err
	}
	if !found {
		return rec, l, false, engine.ErrNotFound
	}
	held, err = getJSON(tx.Bucket(bucketLeases), rec.Service, &l)
	return rec, l, held, err
}

// End records the final state and releases the lease if this release holds it.
func (j *Journal) End(ctx context.Context, id string, owner engine.Owner, state engine.ReleaseState, now time.Time, lastErr string) error {
	return j.update(func(tx *bolt.Tx) error {
		rec, l, held, err := recordAndLease(tx, id)
		if err != nil {
			return err
		}
		if held && l.Release == id && !l.Owner.Same(owner) {
			return nil // another process runs this release now: its run, its record
		}
		if rec.State == engine.ReleaseRolledBack && state == engine.ReleaseTakenOver {
			// A rollback from elsewhere already recorded how this release
			// ended; its fenced-out process only learns of it later.
			state, lastErr = rec.State, rec.Error
		}
		rec.State, rec.Ended, rec.Error = state, now, lastErr
		if err := putJSON(tx.Bucket(bucketReleases), id, rec); err != nil {
			return err
		}
		if held && l.Release == id {
			return tx.Bucket(bucketLeases).Delete([]byte(rec.Service))
		}
		return nil
	})
}

// Releases lists a service's releases newest first ("" for every service).
func (j *Journal) Releases(ctx context.Context, service string, limit int) ([]engine.ReleaseRecord, error) {
	var out []engine.ReleaseRecord
	err := j.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReleases)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var rec engine.ReleaseRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("journal: release %s: %w", k, err)
			}
			if service == "" || rec.Service == service {
				out = append(out, rec)
			}
			return nil
		})
	})
	sort.SliceStable(out, func(a, b int) bool {
		if !out[a].Started.Equal(out[b].Started) {
			return out[a].Started.After(out[b].Started)
		}
		return out[a].ID > out[b].ID
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// Release returns one record or engine.ErrNotFound.
func (j *Journal) Release(ctx context.Context, id string) (engine.ReleaseRecord, error) {
	var rec engine.ReleaseRecord
	err := j.view(func(tx *bolt.Tx) error {
		found, err := getJSON(tx.Bucket(bucketReleases), id, &rec)
		if err == nil && !found {
			err = fmt.Errorf("%s: %w", id, engine.ErrNotFound)
		}
		return err
	})
	return rec, err
}

// Events returns a release's events in the order they were appended.
func (j *Journal) Events(ctx context.Context, id string) ([]engine.Event, error) {
	var out []engine.Event
	err := j.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents)
		if b == nil {
			return nil
		}
		evs := b.Bucket([]byte(id))
		if evs == nil {
			return nil
		}
		return evs.ForEach(func(k, v []byte) error {
			var ev engine.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("journal: event %x of %s: %w", k, id, err)
			}
			out = append(out, ev)
			return nil
		})
	})
	return out, err
}

// Active returns the service's lease, live or stale, if one is held.
func (j *Journal) Active(ctx context.Context, service string) (engine.Lease, bool, error) {
	var l engine.Lease
	var held bool
	err := j.view(func(tx *bolt.Tx) error {
		var err error
		held, err = getJSON(tx.Bucket(bucketLeases), service, &l)
		return err
	})
	return l, held, err
}

// Live reports whether lease still protects its release now, by this
// journal's host and liveness check.
func (j *Journal) Live(l engine.Lease, now time.Time) bool {
	return l.Live(now, j.Host, j.Alive)
}
