package notify

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/cutover/cutover/engine"
)

// Defaults of a Notifier.
const (
	DefaultTimeout  = 5 * time.Second // per attempt
	DefaultAttempts = 4               // per event: the first and three retries
	DefaultBackoff  = time.Second     // before the first retry, doubled before each next
	DefaultQueue    = 1024            // events waiting per target
)

// Target is where notifications go.
type Target struct {
	URL      string
	Secret   []byte             // signs each body (HeaderSignature); none: unsigned
	Template *template.Template // renders the body (engine.ParseNoticeTemplate); nil: the notice as JSON
	Timeout  time.Duration      // per attempt; 0: DefaultTimeout
}

// Options tune a Notifier; zero values are the defaults.
type Options struct {
	// Journal records what could not be delivered, with the release it
	// was about; nil: failures are only dropped.
	Journal  engine.Journal
	Attempts int
	Backoff  time.Duration
	Queue    int
	Client   *http.Client
}

// Notable says whether an event of kind k is worth telling people about:
// the release's course and every decision in it, not its mechanics
// (launches, tables, drains) or its running figures.
func Notable(k engine.EventKind) bool {
	switch k {
	case engine.EventStarted, engine.EventStepStarted, engine.EventStepDone,
		engine.EventGateWaiting, engine.EventGatePassed, engine.EventGateFailed, engine.EventInconclusive,
		engine.EventPaused, engine.EventResumed, engine.EventPromoted, engine.EventRollingBack,
		engine.EventFailure, engine.EventTakenOver, engine.EventFinished:
		return true
	}
	return false
}

// Notifier delivers the notable events of every release to its targets:
// each target has its own queue and goroutine, delivers in order, and
// retries with backoff. Notify never blocks; a full queue drops the event
// and the drop is journaled. A target whose last attempt failed gets one
// attempt per event until one gets through, so a receiver that is down
// costs one failed connection per event, not a backoff each.
type Notifier struct {
	targets []*queue
	closed  atomic.Bool
	once    sync.Once
}

var _ engine.Notifier = (*Notifier)(nil)

// queue is one target's deliveries.
type queue struct {
	Target
	send     *sender
	journal  engine.Journal
	attempts int
	backoff  time.Duration

	events  chan engine.Event
	closing chan struct{} // closed by Close: deliver what is queued, then stop
	stop    context.Context
	abort   context.CancelFunc // Close's deadline passed: give up what is in flight
	done    chan struct{}

	// failing says the last attempt failed: events get one attempt each
	// until one gets through, and Close does not wait for the target.
	failing atomic.Bool

	mu      sync.Mutex
	dropped map[string]*lost // by release: dropped on a full queue, not journaled yet
}

// lost counts a release's events that were not delivered for one reason.
type lost struct {
	service string
	kinds   []engine.EventKind
}

// New starts a Notifier's goroutines; Close stops them.
func New(targets []Target, o Options) *Notifier {
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	send := newSender(o.Journal, o.Client)
	n := &Notifier{}
	for _, t := range targets {
		if t.Timeout <= 0 {
			t.Timeout = DefaultTimeout
		}
		stop, abort := context.WithCancel(context.Background())
		q := &queue{Target: t, send: send, journal: o.Journal, attempts: o.Attempts, backoff: o.Backoff,
			events: make(chan engine.Event, o.Queue), closing: make(chan struct{}), stop: stop, abort: abort,
			done: make(chan struct{}), dropped: map[string]*lost{}}
		n.targets = append(n.targets, q)
		go q.run()
	}
	return n
}

// Notify queues ev for every target, if it is notable. It never blocks.
func (n *Notifier) Notify(ev engine.Event) {
	if !Notable(ev.Kind) || n.closed.Load() {
		return
	}
	for _, q := range n.targets {
		select {
		case q.events <- ev:
		default:
			q.mu.Lock()
			q.dropped[ev.Release] = add(q.dropped[ev.Release], ev)
			q.mu.Unlock()
		}
	}
}

// Close stops taking events and delivers what is queued until ctx ends;
// what is left then is journaled as not delivered. A target whose last
// attempt failed is not waited for: what it has queued is journaled at
// once, so a receiver that is down or slow does not hold the process up.
// Close returns when every target's goroutine has stopped.
func (n *Notifier) Close(ctx context.Context) {
	n.once.Do(func() {
		n.closed.Store(true)
		for _, q := range n.targets {
			close(q.closing)
			if q.failing.Load() {
				q.abort()
			}
		}
		for _, q := range n.targets {
			select {
			case <-q.done:
			case <-ctx.Done():
				q.abort()
				<-q.done
			}
		}
	})
}

func (q *queue) run() {
	defer close(q.done)
	defer q.abort()
	late := map[string]*lost{} // queued when Close's deadline passed
	closing := q.closing
	for {
		if closing == nil && len(q.events) == 0 {
			q.journalDropped()
			q.journalLost(late, "the process ended before it was sent")
			return
		}
		select {
		case ev := <-q.events:
			if q.stop.Err() != nil {
				late[ev.Release] = add(late[ev.Release], ev)
				continue
			}
			q.deliver(ev)
			q.journalDropped()
		case <-closing:
			closing = nil // deliver what is queued, then stop
		}
	}
}

func add(l *lost, ev engine.Event) *lost {
	if l == nil {
		l = &lost{service: ev.Service}
	}
	l.kinds = append(l.kinds, ev.Kind)
	return l
}

// deliver sends ev, with retries unless the target is failing, and
// journals a failure.
func (q *queue) deliver(ev engine.Event) {
	p := q.send.notice(q.stop, ev)
	b, err := p.Body(q.Template)
	if err != nil {
		q.journalFailure(ev, 0, err)
		return
	}
	attempts := q.attempts
	if q.failing.Load() {
		attempts = 1
	}
	wait := q.backoff
	tried := 0
	for tried < attempts {
		if tried > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-q.stop.Done():
				t.Stop()
				attempts = tried // Close's deadline passed: no more waiting
				continue
			}
			wait *= 2
		}
		tried++
		err = q.send.post(q.stop, q.URL, q.Timeout, q.Secret, b, p, tried)
		q.failing.Store(err != nil)
		if err == nil {
			return
		}
	}
	if q.stop.Err() != nil {
		err = fmt.Errorf("the process ended before an answer came (%w)", err)
	}
	q.journalFailure(ev, tried, err)
}

// journalFailure records that ev did not reach the target.
func (q *queue) journalFailure(ev engine.Event, tried int, err error) {
	msg := fmt.Sprintf("notification of %s (event %d) to %s not delivered after %d attempt%s: %v",
		ev.Kind, ev.Seq, Redact(q.URL), tried, plural(tried), err)
	if tried == 0 {
		msg = fmt.Sprintf("notification of %s (event %d) to %s not sent: %v", ev.Kind, ev.Seq, Redact(q.URL), err)
	}
	q.annotate(ev.Release, ev.Service, msg, err.Error())
}

// journalDropped records the events a full queue dropped.
func (q *queue) journalDropped() {
	q.mu.Lock()
	dropped := q.dropped
	q.dropped = map[string]*lost{}
	q.mu.Unlock()
	q.journalLost(dropped, fmt.Sprintf("the queue of %d was full", cap(q.events)))
}

// journalLost records, per release, events that were never sent and why.
func (q *queue) journalLost(byRelease map[string]*lost, why string) {
	ids := make([]string, 0, len(byRelease))
	for id := range byRelease {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		l := byRelease[id]
		kinds := make([]string, len(l.kinds))
		for i, k := range l.kinds {
			kinds[i] = string(k)
		}
		q.annotate(id, l.service, fmt.Sprintf("%d notification%s to %s not delivered (%s): %s",
			len(kinds), plural(len(kinds)), Redact(q.URL), strings.Join(kinds, ", "), why), why)
	}
}

// annotate journals a notify-failed event with the release.
func (q *queue) annotate(release, service, msg, errText string) {
	if q.journal == nil || release == "" {
		return
	}
	ev := engine.Event{At: time.Now(), Release: release, Service: service, Kind: engine.EventNotifyFailed, Step: -1,
		Message: msg, Error: errText}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = q.journal.Append(ctx, ev) // nowhere else to report it: the release goes on regardless
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
