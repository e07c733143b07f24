package haproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cutover/cutover/engine"
)

// The ledger is what this host's cutover remembers of an HAProxy it
// drives, in the state directory beside the journal: a lock that makes
// each apply one critical section among the cutover processes of this
// host, and the last table applied with the HAProxy process that took it.
// HAProxy forgets its runtime changes when it restarts; the ledger is how
// a restart is told apart from an HAProxy cutover never wrote to, and
// what `cutover router restore` applies again.

// lastApply is the last table this host applied, and to which HAProxy.
type lastApply struct {
	Identity string            `json:"haproxy"` // info.identity() of the process that took it
	Table    engine.RouteTable `json:"table"`
	At       time.Time         `json:"at"`
}

// lockPoll is how often a waiting process tries the lock again. Writers
// hold it for the few milliseconds of an apply.
const lockPoll = 5 * time.Millisecond

// lock takes the ledger's lock, shared for readers or exclusive for
// writers, waiting at most until ctx ends. The kernel drops it when the
// process dies, so a killed cutover never leaves it held.
func (r *Router) lock(ctx context.Context, exclusive bool) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(r.lockPath), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", r.lockPath, err)
	}
	f, err := os.OpenFile(r.lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", r.lockPath, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", r.lockPath, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: another cutover process holds it: %w", r.lockPath, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// readLast reads the ledger's last apply; ok is false when this host has
// applied nothing to this router yet.
func (r *Router) readLast() (last lastApply, ok bool, err error) {
	b, err := os.ReadFile(r.lastPath)
	if errors.Is(err, os.ErrNotExist) {
		return lastApply{}, false, nil
	}
	if err != nil {
		return lastApply{}, false, fmt.Errorf("read %s: %w", r.lastPath, err)
	}
	if err := json.Unmarshal(b, &last); err != nil {
		return lastApply{}, false, fmt.Errorf("read %s: %w", r.lastPath, err)
	}
	return last, true, nil
}

// writeLast replaces the ledger's last apply atomically (write, sync,
// rename), so a crash leaves the old one or the new one.
func (r *Router) writeLast(last lastApply) error {
	b, err := json.MarshalIndent(last, "", "  ")
	if err != nil {
		return err
	}
	tmp := r.lastPath + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", r.lastPath, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, r.lastPath)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", r.lastPath, err)
	}
	return nil
}
