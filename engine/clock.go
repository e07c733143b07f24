package engine

import "time"

// Clock is where the engine gets time, so tests can drive it with a fake.
type Clock interface {
	Now() time.Time
	// NewTimer fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer from a Clock.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was pending.
	Stop() bool
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// BackgroundClock is a Clock that can also make timers for work the engine
// keeps running beside its steps (the lease heartbeat). A test clock does
// not count them as the engine waiting, so a test advances time only when
// the steps wait; they still fire when it does.
type BackgroundClock interface {
	Clock
	NewBackgroundTimer(d time.Duration) Timer
}

// backgroundTimer makes a timer for work beside the steps.
func backgroundTimer(c Clock, d time.Duration) Timer {
	if bc, ok := c.(BackgroundClock); ok {
		return bc.NewBackgroundTimer(d)
	}
	return c.NewTimer(d)
}
