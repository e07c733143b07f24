package enginetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

// Env wires the doubles together: the router checks rule 1 against the
// platform on every Apply, the platform checks rule 2 against the router
// on every Stop, and one Trace records the order of all their calls.
type Env struct {
	Clock    *FakeClock
	Platform *Platform
	Router   *Router
	Journal  *Journal
	Trace    *Trace
	Metrics  *Metrics
	Webhooks *Webhooks
}

// NewEnv returns a fresh environment.
func NewEnv() *Env {
	tr := &Trace{}
	clock := NewFakeClock(time.Time{})
	router := NewRouter(tr)
	platform := NewPlatform(clock, router, tr)
	router.Check = platform.CheckServing
	j := NewJournal(tr)
	j.Host = "test-host"
	return &Env{Clock: clock, Platform: platform, Router: router, Journal: j, Trace: tr, Metrics: &Metrics{}, Webhooks: &Webhooks{}}
}

// Deps returns engine dependencies over the doubles; GETs straight at an
// instance's address (smoke checks, a rollback's probe of warm stable
// instances) are answered by the platform's instance there.
func (e *Env) Deps() engine.Deps {
	return engine.Deps{Platform: e.Platform, Router: e.Router, Journal: e.Journal, Clock: e.Clock,
		Owner:   engine.Owner{PID: 1000, Host: "test-host"},
		HTTPGet: e.Platform.Get200, Metrics: e.Metrics, Webhooks: e.Webhooks}
}

// SeedServing starts n healthy instances of version and gives them all
// the traffic, as a finished earlier release would have.
func (e *Env) SeedServing(service, version string, n int) []engine.Instance {
	insts := e.Platform.Seed(service, version, "img:"+version, n)
	t := e.Router.Table()
	var idx []engine.Backend
	for i, in := range insts {
		w := engine.Full / n
		if i < engine.Full%n {
			w++
		}
		idx = append(idx, engine.Backend{ID: in.ID, Addr: in.Addr, Version: version, Weight: w})
	}
	t.Backends = idx
	e.Router.Seed(t)
	return insts
}

// Run is a release running in the background under test. It collects every
// event and moves the fake clock whenever the engine waits on it, so tests
// never sleep.
type Run struct {
	t       testing.TB
	env     *Env
	Release *engine.Release
	ctx     context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	events  []engine.Event
	changed chan struct{}
	cursor  int
	done    chan struct{}
	outcome engine.Outcome
	err     error
}

// Start runs rel in the background with ctx cancelled at the test's end.
func (e *Env) Start(t testing.TB, rel *engine.Release) *Run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Run{t: t, env: e, Release: rel, ctx: ctx, cancel: cancel, changed: make(chan struct{}), done: make(chan struct{})}
	ch, unsub := rel.Subscribe()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		for ev := range ch {
			r.mu.Lock()
			r.events = append(r.events, ev)
			close(r.changed)
			r.changed = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	go func() {
		o, err := rel.Run(ctx)
		<-copied
		r.mu.Lock()
		r.outcome, r.err = o, err
		r.mu.Unlock()
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		unsub()
		<-r.done
	})
	return r
}

// realLimit bounds how long a test may wait for the engine in real time;
// reaching it means the engine is stuck, not slow.
const realLimit = 10 * time.Second

// Until advances the fake clock as the engine waits on it, until an event
// matching pred arrives (returned) or Run ends (ok false). The search
// starts after the event the previous Until returned.
func (r *Run) Until(pred func(engine.Event) bool) (engine.Event, bool) {
	r.t.Helper()
	limit := time.After(realLimit)
	for {
		r.mu.Lock()
		for i := r.cursor; i < len(r.events); i++ {
			if pred(r.events[i]) {
				r.cursor = i + 1
				ev := r.events[i]
				r.mu.Unlock()
				return ev, true
			}
		}
		changed := r.changed
		seen := int64(0)
		if n := len(r.events); n > 0 {
			seen = r.events[n-1].Seq
		}
		r.mu.Unlock()
		select {
		case <-r.done:
			r.mu.Lock()
			n := len(r.events)
			r.mu.Unlock()
			if r.cursor >= n || !r.anyFrom(pred) {
				return engine.Event{}, false
			}
			continue
		case <-changed:
			continue
		case <-limit:
			r.t.Fatalf("engine stuck: no matching event within %s of real time; last events: %v", realLimit, r.lastMessages(8))
		default:
		}
		if r.env.Clock.Waiters() > 0 && seen >= r.Release.Snapshot().Seq {
			r.env.Clock.Advance(r.env.Clock.Next())
			continue
		}
		select {
		case <-changed:
		case <-r.done:
		case <-r.clockBusy():
		case <-limit:
			r.t.Fatalf("engine stuck: no matching event within %s of real time; last events: %v", realLimit, r.lastMessages(8))
		}
	}
}

func (r *Run) anyFrom(pred func(engine.Event) bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := r.cursor; i < len(r.events); i++ {
		if pred(r.events[i]) {
			return true
		}
	}
	return false
}

// clockBusy is closed once the engine waits on the clock.
func (r *Run) clockBusy() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, realLimit)
		defer cancel()
		go func() {
			select {
			case <-r.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		r.env.Clock.BlockUntil(ctx, 1)
		close(ch)
	}()
	return ch
}

// UntilKind is Until for the next event of kind.
func (r *Run) UntilKind(kind engine.EventKind) (engine.Event, bool) {
	r.t.Helper()
	return r.Until(func(ev engine.Event) bool { return ev.Kind == kind })
}

// Idle waits until the engine waits on the clock with every event
// published, or Run has ended. It does not advance the clock: use it
// before asserting that nothing happens. Commands sent just before may
// not be handled yet; wait for their event instead.
func (r *Run) Idle() {
	r.t.Helper()
	limit := time.After(realLimit)
	for {
		select {
		case <-r.done:
			return
		case <-r.clockBusy():
		case <-limit:
			r.t.Fatalf("engine never went idle")
		}
		r.mu.Lock()
		seen := int64(0)
		if n := len(r.events); n > 0 {
			seen = r.events[n-1].Seq
		}
		changed := r.changed
		r.mu.Unlock()
		if seen >= r.Release.Snapshot().Seq {
			return
		}
		select {
		case <-changed:
		case <-r.done:
		case <-limit:
			r.t.Fatalf("engine never went idle")
		}
	}
}

// Wait advances the clock until Run returns, and returns its result.
func (r *Run) Wait() (engine.Outcome, error) {
	r.t.Helper()
	r.Until(func(engine.Event) bool { return false })
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outcome, r.err
}

// Events returns every event so far.
func (r *Run) Events() []engine.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]engine.Event(nil), r.events...)
}

func (r *Run) lastMessages(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for i := max(0, len(r.events)-n); i < len(r.events); i++ {
		out = append(out, string(r.events[i].Kind)+": "+r.events[i].Message)
	}
	return out
}
