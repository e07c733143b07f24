package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Deps are the adapters a release drives.
type Deps struct {
	Platform Platform
	Router   Router
	Journal  Journal
	// Puller, when set, fetches a deploy's image onto the host before the
	// first mutation; a failed pull ends the release with nothing changed.
	Puller Puller
	Clock  Clock // nil: the wall clock
	// HTTPGet fetches url and returns the status code; blue/green smoke
	// checks use it. nil: net/http with the health check's timeout.
	HTTPGet func(ctx context.Context, url string) (int, error)
	// Owner identifies this process for the journal lease; zero fields
	// default to os.Getpid and os.Hostname.
	Owner Owner
	// OwnerAlive reports whether another release's owner on this host
	// still runs; a standalone rollback waits for a fenced-out owner's
	// last launch before its final sweep. nil: never wait.
	OwnerAlive func(Owner) bool
	// Metrics answers analysis queries (QuerySpec): needed by a plan
	// whose analysis has any.
	Metrics MetricsSource
	// Webhooks calls webhook gates: needed by a plan that has one.
	Webhooks Webhooks
	// Notifier hears every event once it is journaled; nil: nobody.
	Notifier Notifier
}

func (d Deps) withDefaults() Deps {
	if d.Clock == nil {
		d.Clock = RealClock{}
	}
	if d.Owner.PID == 0 {
		d.Owner.PID = os.Getpid()
		d.Owner.Start = ProcessStart(d.Owner.PID)
	}
	if d.Owner.Host == "" {
		d.Owner.Host, _ = os.Hostname()
	}
	return d
}

// Options tune one run of a release.
type Options struct {
	// ID resumes the journal's release with this id; empty starts a new one.
	ID    string
	Actor Actor
	// AutoApprove passes approval gates without an operator (headless --auto).
	AutoApprove bool
	// Approve passes the approval gate at Approve.Step, if that is the
	// gate this run reaches, as approved by Approve.By: `cutover approve`
	// resumes a release detached at a gate with the gate it printed, so it
	// passes that gate and, with Detach, stops at the next.
	Approve *Order
	// DetachOnFailure makes Run return Failed when a failure pauses the
	// release, instead of waiting for an operator's resume or rollback;
	// approval gates still wait. Headless runs use it: nobody could answer.
	DetachOnFailure bool
	// Detach makes Run return instead of waiting for an operator: at an
	// approval gate (WaitingForApproval) and when paused by a failure
	// (Failed). The release stays resumable in the journal.
	Detach bool
	// PollEvery is how often the router is read for fencing and figures;
	// default 1s.
	PollEvery time.Duration
}

// ErrNotApplicable is returned by Send for a command that means nothing
// in the release's current state (approve with no approval gate waiting).
var ErrNotApplicable = errors.New("command does not apply now")

// Release runs one plan (or a standalone rollback) and takes commands
// while it does. Create it with New or NewRollback, then call Run once;
// Send, Subscribe and Snapshot are safe from any goroutine.
type Release struct {
	deps Deps
	spec ServiceSpec
	opts Options
	kind ReleaseKind
	id   string

	target Target     // the version being released (for a rollback: the stable one)
	stable VersionRef // the version traffic returns to on rollback
	rolls  string     // standalone rollback: the release it undoes

	cmds    chan Order
	started atomic.Bool
	runCtx  context.Context // Run's context without its cancellation, for work beside the steps

	// The lease: kept by a goroutine beside the steps (keepLease).
	stopBeat func()
	lost     atomic.Bool   // the lease went to another release
	lostCh   chan struct{} // closed when lost is set

	// fenceMu orders the release's router writes and stop decisions with
	// an instant rollback swap made from another goroutine (swapNow).
	fenceMu   sync.Mutex
	swapped   bool // the rollback's swap to stable is applied: no step's table may follow
	announced bool // the rollback was announced (its event journaled)
	// swapAnnounced says the journal write that took the lease announced
	// the swap to stable, which then follows with no write of its own
	// (used once, by swapToStable).
	swapAnnounced bool
	ended         bool            // finish began: no more swaps
	doomed        map[string]bool // instances whose stop was journaled: a swap never gives them traffic

	// Owned by the Run goroutine.
	plan        Plan
	step        int
	epoch       uint64
	paused      bool
	pausedBy    string // "operator" or "failure"
	want        Command
	later       []Order // orders a checkpoint took off the queue for the next tick
	approved    bool
	approvedBy  Actor
	rollbackBy  Actor
	trafficSeen bool
	rollingBack bool
	lastFailure error
	probes      map[string]*probe // instances this release watches, by id
	seen        map[string]bool   // every instance id the release has listed; nil before the first listing
	newcomers   map[string]*newcomer
	lastPoll    time.Time
	lastProbe   time.Time

	emitMu sync.Mutex // orders events in the journal as their sequence numbers
	mu     sync.Mutex
	seq    int64
	snap   Snapshot
	subs   map[int]*subscriber
	nextID int
	closed bool
	// holds counts router writes in progress: while one is, published
	// events wait in held, so the consoles watching (any number, on a
	// server) redraw after the router has the table, not while it writes.
	holds int
	held  []Event
}

// New prepares a release of spec to target. It does no I/O; Run plans
// from the actual state.
func New(deps Deps, spec ServiceSpec, target Target, opts Options) (*Release, error) {
	spec = spec.withDefaults()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	if target.Version == "" || target.Image == "" {
		return nil, fmt.Errorf("%s: target needs an image and a version", spec.Name)
	}
	if err := deps.supports(spec); err != nil {
		return nil, err
	}
	r := newRelease(deps, spec, opts, KindDeploy)
	r.target = target
	return r, nil
}

// NewRollback prepares a standalone rollback of spec to stable, for a
// process that does not own the running release (`cutover rollback`). It
// takes the lease over and fences the old writer out. rollsBack names the
// release being undone, if known.
func NewRollback(deps Deps, spec ServiceSpec, stable Target, rollsBack string, opts Options) (*Release, error) {
	spec = spec.withDefaults()
	if spec.Name == "" {
		return nil, fmt.Errorf("service has no name")
	}
	if stable.Version == "" {
		return nil, fmt.Errorf("%s: rollback needs the stable version", spec.Name)
	}
	r := newRelease(deps, spec, opts, KindRollback)
	r.target = stable
	r.stable = VersionRef{Version: stable.Version, Image: stable.Image}
	r.rolls = rollsBack
	return r, nil
}

// Rollback runs a standalone rollback to stable and waits for it.
func Rollback(ctx context.Context, deps Deps, spec ServiceSpec, stable Target, rollsBack string, opts Options) (Outcome, error) {
	r, err := NewRollback(deps, spec, stable, rollsBack, opts)
	if err != nil {
		return "", err
	}
	return r.Run(ctx)
}

func newRelease(deps Deps, spec ServiceSpec, opts Options, kind ReleaseKind) *Release {
	deps = deps.withDefaults()
	if opts.PollEvery <= 0 {
		opts.PollEvery = time.Second
	}
	if deps.Owner.User == "" {
		deps.Owner.User = opts.Actor.User
	}
	r := &Release{deps: deps, spec: spec, opts: opts, kind: kind, runCtx: context.Background(),
		cmds: make(chan Order, 16), lostCh: make(chan struct{}), doomed: map[string]bool{},
		probes: map[string]*probe{}, newcomers: map[string]*newcomer{}, subs: map[int]*subscriber{}, step: -1}
	r.id = opts.ID
	if r.id == "" {
		r.id = newID(spec.Name, deps.Clock.Now())
	}
	r.snap = Snapshot{ID: r.id, Service: spec.Name, Kind: kind, Step: -1}
	return r
}

// newID makes a sortable, unique release id: web-20250102T150405-3fa2.
func newID(service string, now time.Time) string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return service + "-" + now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
}

// ID is the release's id in the journal.
func (r *Release) ID() string { return r.id }

// Service is the name of the service the release is of.
func (r *Release) Service() string { return r.spec.Name }

// Plan returns the plan Run is following (empty before Run has planned).
func (r *Release) Plan() Plan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snap.Plan
}

// subscriber is one Subscribe channel; a full buffer drops events and
// counts them into the next one delivered.
type subscriber struct {
	ch     chan Event
	missed int
}

// subscriberBuffer is how many events a slow subscriber may fall behind.
const subscriberBuffer = 256

// Subscribe returns a channel of every event from now on, and a cancel
// func. A subscriber that falls behind loses events (Event.Missed counts
// them) rather than slowing the release; the channel closes when Run ends.
func (r *Release) Subscribe() (<-chan Event, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &subscriber{ch: make(chan Event, subscriberBuffer)}
	if r.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	id := r.nextID
	r.nextID++
	r.subs[id] = s
	return s.ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.subs[id]; ok {
			delete(r.subs, id)
			close(s.ch)
		}
	}
}

// emit journals ev, then publishes it and folds it into the snapshot. The
// journal write comes first and is synchronous: nothing the event
// announces happens before it is on disk.
func (r *Release) emit(ctx context.Context, ev Event) error {
	return r.record(ctx, false, ev)
}

// intent is emit for the events that announce a mutation: they are
// journaled only while this release holds its lease, in one write, and
// a lost lease is a takeover.
func (r *Release) intent(ctx context.Context, evs ...Event) error {
	return r.record(ctx, true, evs...)
}

func (r *Release) record(ctx context.Context, fenced bool, evs ...Event) error {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	for i := range evs {
		evs[i] = r.stamp(evs[i])
	}
	var err error
	if j := r.deps.Journal; j != nil {
		if fenced {
			err = j.AppendFenced(context.WithoutCancel(ctx), r.deps.Owner, evs...)
		} else {
			err = j.Append(context.WithoutCancel(ctx), evs...)
		}
	}
	if errors.Is(err, ErrLeaseLost) {
		r.loseLease()
		return errLeaseLost(r.spec.Name)
	}
	if err != nil {
		err = fmt.Errorf("journal: append %s: %w", evs[0].Kind, err)
		r.update(func(s *Snapshot) { s.LastError = err.Error() })
		if fenced {
			return &failure{err: err}
		}
	}
	r.publish(evs...)
	return err
}

// stamp numbers ev and fills in what every event carries. An event that
// sets its own State keeps it.
func (r *Release) stamp(ev Event) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	ev.Seq = r.seq
	ev.At = r.deps.Clock.Now()
	ev.Release = r.id
	ev.Service = r.spec.Name
	ev.Step = r.snap.Step
	if ev.State == "" {
		ev.State = r.snap.State
	}
	return ev
}

// publish folds evs into the snapshot and hands them to subscribers and
// the notifier, unless a router write holds them back (hold).
func (r *Release) publish(evs ...Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.holds > 0 {
		r.held = append(r.held, evs...)
		return
	}
	r.deliver(evs)
}

// hold keeps published events from subscribers until the returned func
// is called, which delivers them in order. A router write holds them:
// journaled first (rule 6), shown right after the write.
func (r *Release) hold() (release func()) {
	r.mu.Lock()
	r.holds++
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.holds--; r.holds == 0 && len(r.held) > 0 {
				evs := r.held
				r.held = nil
				r.deliver(evs)
			}
		})
	}
}

// deliver folds evs into the snapshot and hands them to subscribers and
// the notifier; r.mu is held.
func (r *Release) deliver(evs []Event) {
	for _, ev := range evs {
		if n := r.deps.Notifier; n != nil {
			n.Notify(ev)
		}
		r.snap.LastEvent = ev.Message
		r.snap.Seq = ev.Seq
		if ev.Error != "" {
			r.snap.LastError = ev.Error
		}
		for _, s := range r.subs {
			e := ev
			e.Missed = s.missed
			select {
			case s.ch <- e:
				s.missed = 0
			default:
				s.missed++
			}
		}
	}
}

// update changes the snapshot under the lock.
func (r *Release) update(f func(s *Snapshot)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.snap)
}

func (r *Release) setState(s ReleaseState) { r.update(func(sn *Snapshot) { sn.State = s }) }

// baseState is the state of a release that is neither paused nor rolling back.
func (r *Release) baseState() ReleaseState {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.snap.Gate; g != nil && g.Gate.Kind == GateApproval && !r.approved && !r.opts.AutoApprove {
		return ReleaseWaiting
	}
	return ReleaseRunning
}

// closeSubs ends every subscription.
func (r *Release) closeSubs() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for id, s := range r.subs {
		close(s.ch)
		delete(r.subs, id)
	}
}

func (r *Release) httpGet(ctx context.Context, url string) (int, error) {
	if r.deps.HTTPGet != nil {
		return r.deps.HTTPGet(ctx, url)
	}
	ctx, cancel := context.WithTimeout(ctx, r.spec.Health.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
