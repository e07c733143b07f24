// Package enginetest provides in-memory test doubles for the engine: a
// fake clock, a Platform, a Router and a Journal, plus a shared Trace that
// records the order of their calls.
package enginetest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/cutover/cutover/engine"
)

// FakeClock is an engine.Clock that moves only when told to. Tests call
// BlockUntil to know the engine is waiting on it, then Advance.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	bg      []*fakeTimer  // background timers: fire on Advance, never counted as waiting
	changed chan struct{} // closed and replaced whenever timers change
}

// NewFakeClock starts a clock at t (a fixed date if zero).
func NewFakeClock(t time.Time) *FakeClock {
	if t.IsZero() {
		t = time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	}
	return &FakeClock{now: t, changed: make(chan struct{})}
}

type fakeTimer struct {
	c     *FakeClock
	at    time.Time
	ch    chan time.Time
	fired bool
	bg    bool
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer registers a timer firing at Now()+d.
func (c *FakeClock) NewTimer(d time.Duration) engine.Timer { return c.newTimer(d, false) }

// NewBackgroundTimer registers a timer firing at Now()+d that Waiters,
// Next and BlockUntil do not count: the engine's heartbeat runs beside its
// steps, and a test should move time only when the steps wait.
func (c *FakeClock) NewBackgroundTimer(d time.Duration) engine.Timer { return c.newTimer(d, true) }

func (c *FakeClock) newTimer(d time.Duration, bg bool) engine.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), ch: make(chan time.Time, 1), bg: bg}
	if d <= 0 {
		t.fired = true
		t.ch <- c.now
		return t
	}
	if bg {
		c.bg = append(c.bg, t)
	} else {
		c.timers = append(c.timers, t)
		c.notify()
	}
	return t
}

// list is where t waits: the background timers or the others.
func (c *FakeClock) list(t *fakeTimer) *[]*fakeTimer {
	if t.bg {
		return &c.bg
	}
	return &c.timers
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.list(t)
	for i, x := range *l {
		if x == t {
			*l = append((*l)[:i], (*l)[i+1:]...)
			if !t.bg {
				c.notify()
			}
			return true
		}
	}
	return false
}

// notify wakes BlockUntil callers; c.mu is held.
func (c *FakeClock) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock by d and fires the timers that are due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	c.timers = c.fireDue(c.timers)
	c.bg = c.fireDue(c.bg)
	c.notify()
}

// fireDue fires the timers of ts that are due and returns the others.
func (c *FakeClock) fireDue(ts []*fakeTimer) []*fakeTimer {
	keep := ts[:0]
	for _, t := range ts {
		if !t.at.After(c.now) {
			t.fired = true
			t.ch <- c.now
			continue
		}
		keep = append(keep, t)
	}
	return keep
}

// Waiters is how many timers are pending.
func (c *FakeClock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// Next is the time until the earliest pending timer (0 if none).
func (c *FakeClock) Next() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0
	}
	next := c.timers[0].at
	for _, t := range c.timers {
		if t.at.Before(next) {
			next = t.at
		}
	}
	return next.Sub(c.now)
}

// BlockUntil waits until at least n timers are pending: the engine is idle,
// waiting for time to pass. It returns false if ctx ends first.
func (c *FakeClock) BlockUntil(ctx context.Context, n int) bool {
	for {
		c.mu.Lock()
		ok, ch := len(c.timers) >= n, c.changed
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}
