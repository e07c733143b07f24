package tui

import (
	"context"
	"time"

	"github.com/cutover/cutover/engine"
)

// Backend is everything the console needs from outside: the config, the
// Docker host, the router and the journal, behind one seam. cmd/cutover
// implements it over the real adapters; tests use an in-memory one. Every
// method may be slow (network, disk): the console calls them only from a
// tea.Cmd, never from Update.
type Backend interface {
	// Services lists the services of the config with their live state.
	Services(ctx context.Context) ([]ServiceState, error)
	// ImagePages lists a service's candidate images, marked with what runs
	// now and what ran before, page by page as the registry answers (a
	// large ECR repository takes several round trips): page is called once
	// per page, from the calling goroutine. Pages are not ordered with each
	// other; the picker merges them in the service's order.
	ImagePages(ctx context.Context, service string, page func([]ImageRow)) error
	// Spec is the service's configured settings, to preset the strategy screen.
	Spec(ctx context.Context, service string) (engine.ServiceSpec, error)
	// Plan computes the steps of releasing image (an ImageRow.Ref) with
	// spec (possibly edited in the strategy screen). It changes nothing.
	Plan(ctx context.Context, service, image string, spec engine.ServiceSpec) (engine.Plan, error)
	// Start prepares a release of image with spec; the console then runs
	// it with Run and drives it with Do. An interrupted release of the
	// same image is resumed rather than started anew.
	Start(ctx context.Context, service, image string, spec engine.ServiceSpec) (*engine.Release, error)
	// Resume prepares the service's interrupted release again: its journaled
	// target (pinned image), strategy and id, continued from the actual state.
	Resume(ctx context.Context, service string) (*engine.Release, error)
	// Rollback prepares an emergency rollback of the service to its stable
	// version, taking over from any release in progress elsewhere. When
	// the backend itself runs a release of the service, it orders that
	// release to roll back and returns it instead.
	Rollback(ctx context.Context, service string) (*engine.Release, error)
	// Run runs rel (from Start, Resume or Rollback) in the backend and
	// returns how it ended; a release the backend already runs is not run
	// twice: Run follows it. Run returns early with ctx's error when ctx
	// ends. The release belongs to the backend, not to the console: on a
	// server (cutover serve) it goes on when the session ends.
	Run(ctx context.Context, rel *engine.Release) (engine.Outcome, error)
	// Live returns the release of service that runs in the backend now,
	// started by this console or, on a server, by anyone; nil if none.
	Live(service string) *engine.Release
	// Do gives a running release an order from the person at this console:
	// the backend says who gave it (Order.By) and refuses what their role
	// does not allow, whatever the console shows.
	Do(ctx context.Context, rel *engine.Release, o engine.Order) error
	// History lists releases newest first ("" for every service).
	History(ctx context.Context, service string, limit int) ([]engine.ReleaseRecord, error)
	// Events returns one release's journaled events in order.
	Events(ctx context.Context, releaseID string) ([]engine.Event, error)
}

// ServiceState is a service as the home screen shows it.
type ServiceState struct {
	Name     string
	Strategy engine.StrategyType // configured default
	Replicas int                 // configured
	// Versions running now, stable first, with their instances' health
	// and their share of traffic (0..1).
	Versions  []VersionState
	Instances []engine.InstanceView
	Table     engine.RouteTable
	Stats     engine.Stats
	// RouterAddr is where clients send traffic; RouterError says why the
	// router could not be read, if it could not.
	RouterAddr  string
	RouterError string
	// Release is the latest release from the journal (nil if none);
	// Interrupted says it did not finish and no live process owns it, so
	// it can be resumed or rolled back.
	Release     *engine.ReleaseRecord
	Interrupted bool
	// SemverTags says the service orders its images by tag as a version
	// rather than by push time (source.semver).
	SemverTags bool
	// RollbackTo is the version an emergency rollback returns to (the
	// stable version of the latest deploy), "" when there is none;
	// RollbackFirst says what it does first and how long that takes.
	RollbackTo    string
	RollbackFirst string
	// Next says what the next command does to the latest release (which
	// gate an approve passes and what follows, or the failure it applies).
	Next string
	// Owner describes a live release run by another process ("pid 4242 on
	// host, by alice"), empty if none.
	Owner string
	// Live says the backend runs the service's release now (Backend.Live):
	// the console can watch and drive it.
	Live bool
	// Error says why the service's state could not be read (Docker down).
	Error string
	At    time.Time
}

// VersionState is one version of a service and how it is doing.
type VersionState struct {
	Version   string
	Share     float64 // fraction of traffic, 0..1
	Instances int
	Healthy   int
}

// ImageRow is a candidate image in the picker.
type ImageRow struct {
	engine.Image
	Ref     string // what to pass to Plan and Start: a tag or a full reference
	Running bool   // runs now
	RanAt   bool   // ran before (from the journal)
}
