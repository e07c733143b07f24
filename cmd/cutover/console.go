package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/docker"
	"github.com/cutover/cutover/engine/ecr"
	"github.com/cutover/cutover/engine/journal"
	"github.com/cutover/cutover/engine/swarm"
	"github.com/cutover/cutover/tui"
)

// backendCore is what every console of a process shares over the real
// adapters: the config, the journal, the connections, and the runner that
// owns the releases they start. Connections are made on first use and
// retried on the next call after a failure, so a console opens (and says
// what is wrong) even when Docker or a router does not answer.
type backendCore struct {
	cfg     *config.Config
	journal engine.Journal
	labels  map[string]string
	hooks   *hooks
	// owner is who runs the releases, for their leases; cutover serve
	// adds its control socket. Zero fields are this process.
	owner engine.Owner
	runs  *engine.Runner
	// audit hears of every order or start a person's role refused.
	audit func(who engine.Actor, what string)

	mu       sync.Mutex
	platform *docker.Platform           // services on platform docker share it
	swarms   map[string]*swarm.Platform // by service: each gives its nodes its own registry login
	routers  map[string]routerConn
	ecrs     map[string]*ecr.Registry // by service: keeps each ECR login token cached
}

// consoleBackend is one person's console over the shared core: the
// releases it starts and the orders it gives are theirs, and their role
// limits both, whatever the console shows.
type consoleBackend struct {
	*backendCore
	who  engine.Actor
	role engine.Role // "" for the local console: its Unix user may do anything
}

var _ tui.Backend = (*consoleBackend)(nil)

func newBackendCore(cfg *config.Config) (*backendCore, error) {
	j, err := openJournal(cfg)
	if err != nil {
		return nil, err
	}
	labels, err := extraLabels()
	if err != nil {
		return nil, err
	}
	h, err := openHooks(cfg, j)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.File, err)
	}
	return &backendCore{cfg: cfg, journal: j, labels: labels, hooks: h, runs: engine.NewRunner(),
		routers: map[string]routerConn{}, ecrs: map[string]*ecr.Registry{}, swarms: map[string]*swarm.Platform{}}, nil
}

// newConsoleBackend is the local console's backend: the Unix user, with
// every right.
func newConsoleBackend(cfg *config.Config) (*consoleBackend, error) {
	core, err := newBackendCore(cfg)
	if err != nil {
		return nil, err
	}
	return &consoleBackend{backendCore: core, who: actor()}, nil
}

// as is the console of another person over the same core.
func (b *backendCore) as(who engine.Actor, role engine.Role) *consoleBackend {
	return &consoleBackend{backendCore: b, who: who, role: role}
}

// Close releases the connections, after the last notifications.
func (b *backendCore) Close() {
	b.hooks.close()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.platform != nil {
		b.platform.Close()
	}
	for _, sw := range b.swarms {
		sw.Close()
	}
	for _, c := range b.routers {
		c.Close()
	}
}

// refuse says why the person may not do what (nil when they may).
func (b *consoleBackend) refuse(may bool, what string) error {
	if b.role == "" || may {
		return nil
	}
	if b.audit != nil {
		b.audit(b.who, what)
	}
	return &engine.RoleError{Who: b.who, Role: b.role, What: what}
}

// deps are the engine's dependencies for s, run by this process.
func (b *consoleBackend) deps(s *service) engine.Deps {
	d := s.deps()
	d.Owner = b.owner
	return d
}

// service connects what one service needs, reusing earlier connections.
func (b *backendCore) service(ctx context.Context, name string) (*service, error) {
	svc, err := b.cfg.Service(name)
	if err != nil {
		return nil, err
	}
	s := &service{cfg: b.cfg, svc: svc, spec: specOf(svc), journal: b.journal, hooks: b.hooks}
	s.spec.Labels = b.labels
	b.mu.Lock()
	defer b.mu.Unlock()
	if svc.Source.Type == config.SourceECR {
		if s.ecr = b.ecrs[name]; s.ecr == nil {
			if _, err := s.ecrRegistry(ctx); err != nil {
				return nil, err
			}
			b.ecrs[name] = s.ecr
		}
	}
	if err := b.connect(ctx, s); err != nil {
		return nil, err
	}
	if c, ok := b.routers[svc.Router]; ok {
		s.router = c
		r := b.cfg.Routers[svc.Router]
		s.routerListen = r.Listen
		return s, nil
	}
	if err := s.dialRouter(); err != nil {
		return nil, err
	}
	b.routers[svc.Router] = s.router
	return s, nil
}

// connect gives s the platform of its service: the Docker host shared by
// the services on platform docker, or the service's own swarm platform.
// b.mu is held.
func (b *backendCore) connect(ctx context.Context, s *service) error {
	if s.svc.Platform == config.PlatformSwarm {
		sw := b.swarms[s.svc.Name]
		if sw == nil {
			var err error
			if _, sw, err = connectHost(ctx, s.svc, s.nodeLogin()); err != nil {
				return err
			}
			b.swarms[s.svc.Name] = sw
		}
		s.platform, s.swarm = sw.Docker(), sw
		return nil
	}
	if b.platform == nil {
		p, err := docker.New(ctx)
		if err != nil {
			return err
		}
		b.platform = p
	}
	s.platform = b.platform
	return nil
}

// Services lists every configured service's state; a service whose state
// cannot be read carries the error instead of failing the list.
func (b *consoleBackend) Services(ctx context.Context) ([]tui.ServiceState, error) {
	names := b.cfg.ServiceNames()
	out := make([]tui.ServiceState, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := b.serviceState(ctx, n)
			if err != nil {
				st.Error = err.Error()
			}
			out[i] = st
		}()
	}
	wg.Wait()
	return out, nil
}

// serviceState reads one service's live state.
func (b *consoleBackend) serviceState(ctx context.Context, name string) (tui.ServiceState, error) {
	st := tui.ServiceState{Name: name, At: time.Now()}
	if svc, err := b.cfg.Service(name); err == nil {
		st.Strategy = engine.StrategyType(svc.Strategy.Type)
		st.Replicas = svc.Replicas
		st.SemverTags = svc.Source.Semver
		st.RouterAddr = b.cfg.Routers[svc.Router].Listen
	}
	s, err := b.service(ctx, name)
	if err != nil {
		// The journal still answers: the release line shows when Docker
		// or the router is down.
		full, _ := engine.ReadStatus(ctx, engine.Deps{Journal: b.journal}, engine.StatusOptions{Now: time.Now(), Host: hostname(), Alive: journal.OwnerAlive, Spec: engine.ServiceSpec{Name: name}})
		fillState(&st, full)
		return st, err
	}
	full, err := s.status(ctx, true)
	fillState(&st, full)
	_, st.Live = b.runs.Live(name)
	return st, err
}

// fillState puts a service's status into the console's terms.
func fillState(st *tui.ServiceState, full serviceStatus) {
	st.Release, st.Next, st.RollbackFirst = full.Release, full.Next, full.RollbackFirst
	st.RollbackTo = full.RollbackTo.Version
	if l := full.Lease; l != nil && l.Live {
		st.Owner = fmt.Sprintf("pid %d on %s", l.Owner.PID, l.Owner.Host)
		if l.Owner.Control != "" {
			st.Owner = "cutover serve, " + st.Owner
		}
		if l.Owner.User != "" {
			st.Owner += ", by " + l.Owner.User
		}
	}
	st.Interrupted = st.Release != nil && !st.Release.State.Finished() && st.Owner == ""
	st.Table, st.Stats, st.RouterError = full.Router.Table, full.Router.Stats, full.Router.Error
	versions := map[string]*tui.VersionState{}
	for _, in := range full.Instances {
		healthy := in.Healthy()
		st.Instances = append(st.Instances, engine.InstanceView{
			Instance: in.Instance, Health: in.Health, Healthy: healthy, Weight: in.Weight,
		})
		v := versions[in.Version]
		if v == nil {
			v = &tui.VersionState{Version: in.Version, Share: full.Router.Shares[in.Version]}
			versions[in.Version] = v
		}
		v.Instances++
		if healthy {
			v.Healthy++
		}
	}
	for _, v := range versions {
		st.Versions = append(st.Versions, *v)
	}
	sort.Slice(st.Versions, func(i, j int) bool {
		if st.Versions[i].Share != st.Versions[j].Share {
			return st.Versions[i].Share > st.Versions[j].Share
		}
		return st.Versions[i].Version < st.Versions[j].Version
	})
}

// ImagePages delivers the candidate images page by page as the registry
// answers; pages are not in order with each other.
func (b *consoleBackend) ImagePages(ctx context.Context, name string, page func([]tui.ImageRow)) error {
	s, err := b.service(ctx, name)
	if err != nil {
		return err
	}
	return s.imagePages(ctx, func(rows []imageRow) { page(s.toImageRows(ctx, rows)) })
}

// toImageRows makes picker rows whose Ref names the image by content, so the
// release runs the image of the row the operator chose even if its tag moves
// before Enter (the version is still the row's first tag).
func (s *service) toImageRows(ctx context.Context, rows []imageRow) []tui.ImageRow {
	out := make([]tui.ImageRow, len(rows))
	for i, r := range rows {
		ref := r.Digest
		if s.svc.Source.Type != config.SourceECR {
			ref = s.pinned(ctx, r.Image)
		}
		out[i] = tui.ImageRow{Image: r.Image, Ref: ref, Running: r.Running, RanAt: r.RanFrom}
	}
	return out
}

// Spec is the service's configured settings.
func (b *consoleBackend) Spec(ctx context.Context, name string) (engine.ServiceSpec, error) {
	svc, err := b.cfg.Service(name)
	if err != nil {
		return engine.ServiceSpec{}, err
	}
	spec := specOf(svc)
	spec.Labels = b.labels
	return spec, nil
}

// Plan computes the steps of a release; it changes nothing.
func (b *consoleBackend) Plan(ctx context.Context, name, image string, spec engine.ServiceSpec) (engine.Plan, error) {
	s, err := b.service(ctx, name)
	if err != nil {
		return engine.Plan{}, err
	}
	s.spec = spec
	target, err := s.resolveTarget(ctx, image)
	if err != nil {
		return engine.Plan{}, err
	}
	return engine.NewPlan(ctx, s.deps(), spec, target)
}

// Start prepares a release, resuming an interrupted one of the same image.
func (b *consoleBackend) Start(ctx context.Context, name, image string, spec engine.ServiceSpec) (*engine.Release, error) {
	if err := b.refuse(b.role.MayRelease(), "start a release"); err != nil {
		return nil, err
	}
	s, err := b.service(ctx, name)
	if err != nil {
		return nil, err
	}
	s.spec = spec
	target, err := s.resolveTarget(ctx, image)
	if err != nil {
		return nil, err
	}
	opts := engine.Options{Actor: b.who}
	rec, ok, err := s.resumable(ctx, target)
	if err != nil {
		return nil, err
	}
	if ok {
		opts.ID, target = rec.ID, rec.To
		s.resumeAs(rec)
		spec = s.spec
	}
	return engine.New(b.deps(s), spec, target, opts)
}

// Resume prepares the service's interrupted release again, exactly as
// journaled: the same pinned image, strategy and id.
func (b *consoleBackend) Resume(ctx context.Context, name string) (*engine.Release, error) {
	if err := b.refuse(b.role.MayRelease(), "resume a release"); err != nil {
		return nil, err
	}
	s, err := b.service(ctx, name)
	if err != nil {
		return nil, err
	}
	recs, err := s.journal.Releases(ctx, name, 1)
	if err != nil {
		return nil, err
	}
	rec, ok := engine.Interrupted(recs)
	if !ok {
		return nil, fmt.Errorf("%s: no interrupted release to resume", name)
	}
	s.resumeAs(rec)
	return engine.New(b.deps(s), s.spec, rec.To, engine.Options{ID: rec.ID, Actor: b.who})
}

// Rollback prepares an emergency rollback to the stable version. A
// release of the service this process runs is ordered to roll back
// instead (its instant swap included), and returned to watch.
func (b *consoleBackend) Rollback(ctx context.Context, name string) (*engine.Release, error) {
	if err := b.refuse(b.role.Permits(engine.CmdRollback), "roll back"); err != nil {
		return nil, err
	}
	if run, ok := b.runs.Live(name); ok {
		sn := run.Release.Snapshot()
		if sn.Kind == engine.KindDeploy && sn.State != engine.ReleaseRollingBack {
			if err := b.Do(ctx, run.Release, engine.Order{Command: engine.CmdRollback}); err != nil {
				return nil, err
			}
		}
		return run.Release, nil
	}
	s, err := b.service(ctx, name)
	if err != nil {
		return nil, err
	}
	stable, undo, err := s.stableTarget(ctx, "")
	if err != nil {
		return nil, err
	}
	return engine.NewRollback(b.deps(s), s.spec, stable, undo, engine.Options{Actor: b.who})
}

// Run runs rel in the process's runner, or follows it there; the release
// goes on when ctx (the console) ends.
func (b *consoleBackend) Run(ctx context.Context, rel *engine.Release) (engine.Outcome, error) {
	run, err := b.runs.Start(rel)
	if err != nil {
		return "", err
	}
	return run.Wait(ctx)
}

// Live is the release of service this process runs, if any.
func (b *consoleBackend) Live(service string) *engine.Release {
	if run, ok := b.runs.Live(service); ok {
		return run.Release
	}
	return nil
}

// Do gives rel an order as this console's person, if their role allows it.
func (b *consoleBackend) Do(ctx context.Context, rel *engine.Release, o engine.Order) error {
	if err := b.refuse(b.role.Permits(o.Command), string(o.Command)); err != nil {
		return err
	}
	o.By = b.who
	return rel.Do(o)
}

// History lists releases newest first.
func (b *consoleBackend) History(ctx context.Context, name string, limit int) ([]engine.ReleaseRecord, error) {
	return b.journal.Releases(ctx, name, limit)
}

// Events returns one release's events.
func (b *consoleBackend) Events(ctx context.Context, id string) ([]engine.Event, error) {
	return b.journal.Events(ctx, id)
}

// runConsole opens the console over the config's services.
func runConsole(cmd *cobra.Command, _ []string) error {
	if !term.IsTerminal(int(os.Stdout.Fd())) {
		return withCode(exitUsage, errors.New("the console needs a terminal; use the headless commands (cutover deploy, rollback, status, history) from scripts and CI"))
	}
	cfg, err := loadConfigFlag(cmd)
	if err != nil {
		return err
	}
	b, err := newConsoleBackend(cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	service, _ := cmd.Flags().GetString("service")
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return tui.Run(ctx, b, tui.Options{Service: service})
}
