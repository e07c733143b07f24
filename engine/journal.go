package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// LeaseStaleAfter is how long a lease held from another host lives without
// a heartbeat: after it, another process may take the service over. On the
// lease's own host, the owner's process decides instead (see Lease.Live).
const LeaseStaleAfter = 15 * time.Second

// HeartbeatEvery is how often a running release renews its lease. The
// heartbeat runs beside the steps, so a long Docker call never starves it.
const HeartbeatEvery = 5 * time.Second

// ErrLeaseHeld says another release of the service is in progress; the
// concrete error is a *LeaseHeldError naming who holds it.
var ErrLeaseHeld = errors.New("another release of this service is in progress")

// ErrLeaseLost says the lease this release held went to another process.
var ErrLeaseLost = errors.New("release lease taken over by another process")

// ErrNotFound is returned by Journal.Release for an unknown id.
var ErrNotFound = errors.New("release not found")

// Owner is the process running a release.
type Owner struct {
	PID  int    `json:"pid"`
	Host string `json:"host"`
	User string `json:"user,omitempty"`
	// Start is when the process started, in the host's clock ticks since
	// boot (0 where unknown): a pid reused by a later process is not the owner.
	Start uint64 `json:"start,omitempty"`
	// Control is where the owner takes orders for its releases, when it
	// is a long-running `cutover serve`: a unix socket on its host. The
	// other commands send approvals and rollbacks there instead of
	// running the release a second time.
	Control string `json:"control,omitempty"`
}

// Same reports whether o and p are the same process.
func (o Owner) Same(p Owner) bool {
	return o.PID == p.PID && o.Host == p.Host && (o.Start == 0 || p.Start == 0 || o.Start == p.Start)
}

// Lease is a service's one-release-at-a-time lock, kept alive by heartbeats.
type Lease struct {
	Service   string    `json:"service"`
	Release   string    `json:"release"`
	Owner     Owner     `json:"owner"`
	Since     time.Time `json:"since"`
	Heartbeat time.Time `json:"heartbeat"`
}

// Live reports whether the lease still protects its release at now. When
// the owner runs on host and alive can tell, its process decides: a live
// owner is never declared dead because one slow call delayed a heartbeat,
// and a dead one is dead at once. Otherwise the heartbeat must be fresh.
func (l Lease) Live(now time.Time, host string, alive func(Owner) bool) bool {
	if l.Owner.Host == host && alive != nil {
		return alive(l.Owner)
	}
	return now.Sub(l.Heartbeat) <= LeaseStaleAfter
}

// LeaseHeldError names who holds a service's lease.
type LeaseHeldError struct {
	Lease Lease
	Now   time.Time
}

func (e *LeaseHeldError) Error() string {
	l := e.Lease
	who := fmt.Sprintf("pid %d on %s", l.Owner.PID, l.Owner.Host)
	if l.Owner.User != "" {
		who += " (" + l.Owner.User + ")"
	}
	if l.Owner.Control != "" {
		who = "cutover serve, " + who
	}
	return fmt.Sprintf("%s: release %s is in progress by %s since %s, last heartbeat %s ago",
		l.Service, l.Release, who, l.Since.Format(time.RFC3339), e.Now.Sub(l.Heartbeat).Round(time.Second))
}

// Is makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// ReleaseKind says whether a record is a deploy or a standalone rollback.
type ReleaseKind string

// Release kinds.
const (
	KindDeploy   ReleaseKind = "deploy"
	KindRollback ReleaseKind = "rollback"
)

// VersionRef is a version and the image it ran from.
type VersionRef struct {
	Version string `json:"version"`
	Image   string `json:"image,omitempty"`
}

// ReleaseRecord is the journal's summary of one release.
type ReleaseRecord struct {
	ID       string       `json:"id"`
	Service  string       `json:"service"`
	Kind     ReleaseKind  `json:"kind"`
	From     []VersionRef `json:"from"` // stable first, then any other versions present
	To       Target       `json:"to"`
	Strategy StrategyType `json:"strategy"`
	Actor    Actor        `json:"actor"`
	Owner    Owner        `json:"owner"` // the process that last ran it
	Started  time.Time    `json:"started"`
	Ended    time.Time    `json:"ended,omitzero"`
	State    ReleaseState `json:"state"`
	Step     int          `json:"step"`
	Steps    int          `json:"steps"`
	Epoch    uint64       `json:"epoch"`
	Error    string       `json:"error,omitempty"`
	// RollsBack is, for a standalone rollback, the release it undid.
	RollsBack string `json:"rolls_back,omitempty"`
	// NotifyFailed counts the notifications about this release that did
	// not reach their target (EventNotifyFailed).
	NotifyFailed int `json:"notify_failed,omitempty"`
}

// Fold updates the record with an event appended to its release, as every
// Journal does: the event's state and step become the record's, except
// for annotations (a failed notification), which are only counted.
func (r *ReleaseRecord) Fold(ev Event) {
	if ev.Kind == EventNotifyFailed {
		r.NotifyFailed++
	}
	if ev.Kind.Annotation() {
		return
	}
	if ev.State != "" {
		r.State = ev.State
	}
	r.Step = ev.Step
	switch {
	case ev.Kind == EventStarted && ev.Epoch > 0:
		r.Epoch = ev.Epoch // claimed once the run held its lease
	case ev.Kind == EventPlanned:
		r.Steps = len(ev.Plan)
	}
}

// Summary says what the release moved: "1.0.0 → 1.1.0", "first deploy
// → 1.0.0", "rollback to 1.0.0".
func (r ReleaseRecord) Summary() string {
	switch {
	case r.Kind == KindRollback:
		return "back to " + r.To.Version
	case len(r.From) == 0:
		return "first deploy → " + r.To.Version
	}
	return versionList(r.From) + " → " + r.To.Version
}

// Stable is the version traffic went to before the release ("" for a first deploy).
func (r ReleaseRecord) Stable() VersionRef {
	if len(r.From) == 0 {
		return VersionRef{}
	}
	return r.From[0]
}

// Journal stores releases and their events durably, and holds the
// one-release-per-service lease. Writes return only once they are on disk.
type Journal interface {
	// Begin stores rec (or reopens the record with rec.ID to resume it),
	// takes the service's lease for rec.Owner at now and appends evs, all
	// in one write. It fails with a *LeaseHeldError while another process
	// holds a live lease, unless takeover is set.
	Begin(ctx context.Context, rec ReleaseRecord, now time.Time, takeover bool, evs ...Event) error
	// Append stores evs in one write; each event is folded into its
	// release's record (ReleaseRecord.Fold).
	Append(ctx context.Context, evs ...Event) error
	// AppendFenced is Append only while the release of evs holds its
	// service's lease for owner, checked in the same write; otherwise it
	// stores nothing and returns ErrLeaseLost. It journals the intent
	// before every mutation, so a process that lost the lease cannot
	// announce, and so cannot make, another change.
	AppendFenced(ctx context.Context, owner Owner, evs ...Event) error
	// Heartbeat renews the lease; ErrLeaseLost if another release, or
	// another process running the same release, took it.
	Heartbeat(ctx context.Context, releaseID string, owner Owner, now time.Time) error
	// End records the final state of owner's run of the release and
	// releases the lease if it still holds it. A run that lost the release
	// to another process running the same release changes nothing.
	End(ctx context.Context, releaseID string, owner Owner, state ReleaseState, now time.Time, lastErr string) error
	// Releases lists a service's releases newest first ("" for all services).
	Releases(ctx context.Context, service string, limit int) ([]ReleaseRecord, error)
	// Release returns one record, or ErrNotFound.
	Release(ctx context.Context, id string) (ReleaseRecord, error)
	// Events returns a release's events in the order they were appended.
	Events(ctx context.Context, id string) ([]Event, error)
	// Active returns the service's lease, live or stale, if one is held.
	Active(ctx context.Context, service string) (Lease, bool, error)
}
