package main

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/docker"
	"github.com/cutover/cutover/engine/ecr"
	"github.com/cutover/cutover/engine/haproxy"
	"github.com/cutover/cutover/engine/journal"
	"github.com/cutover/cutover/engine/router"
	"github.com/cutover/cutover/engine/swarm"
)

// service is what a headless command needs to act on one service: its
// config, the engine's view of its settings and the adapters, connected.
type service struct {
	cfg      *config.Config
	svc      *config.Service
	spec     engine.ServiceSpec
	platform *docker.Platform // the Docker host: its images, pulls and, on platform docker, the instances
	swarm    *swarm.Platform  // on platform swarm, the instances, through platform's engine (a manager)
	dock     *dockerConn      // a connection still being made (openServiceFast)
	router   routerConn
	journal  engine.Journal
	hooks    *hooks        // Prometheus, webhook gates, notifications: for commands that run releases
	ecrMu    sync.Mutex    // ecr is made on first use, which may be a Swarm launch
	ecr      *ecr.Registry // the service's ECR registry (source type ecr), made on first use
	// routerAdmin and routerListen say where the router is, for messages.
	routerAdmin  string
	routerListen string
}

// openService loads the config named by --config and connects to the
// service's Docker host, router and journal. Every failure says which of
// them did not answer; nothing is changed.
func openService(ctx context.Context, cmd *cobra.Command, name string) (*service, error) {
	return openServiceWith(ctx, cmd, name, false)
}

// openServiceWith is openService; with fast, the Docker host is connected
// in the background and waited for only where it is used, so a rollback's
// swap, which reads only the journal and the router, never waits for it.
func openServiceWith(ctx context.Context, cmd *cobra.Command, name string, fast bool) (*service, error) {
	cfg, err := loadConfigFlag(cmd)
	if err != nil {
		return nil, err
	}
	svc, err := cfg.Service(name)
	if err != nil {
		return nil, err
	}
	s := &service{cfg: cfg, svc: svc, spec: specOf(svc)}
	if s.spec.Labels, err = extraLabels(); err != nil {
		return nil, withCode(exitUsage, err)
	}
	s.journal, err = openJournal(cfg)
	if err != nil {
		return nil, err
	}
	if fast {
		s.dock = connectDocker(ctx, svc, s.nodeLogin())
	} else if s.platform, s.swarm, err = connectHost(ctx, svc, s.nodeLogin()); err != nil {
		return nil, err
	}
	if err := s.dialRouter(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// routerConn is a service's router as the commands use it: the engine's
// Router, a check that it answers, and Close.
type routerConn interface {
	engine.Router
	Ping(ctx context.Context) error
	Close() error
}

// builtinRouter is the admin client of a `cutover router`.
type builtinRouter struct{ *router.Client }

// Ping checks that the router answers its admin API.
func (b builtinRouter) Ping(ctx context.Context) error {
	_, err := b.Health(ctx)
	return err
}

// dialRouter connects the service's router: the admin client of a
// builtin router, or the runtime API adapter of an HAProxy backend.
func (s *service) dialRouter() error {
	r, ok := s.cfg.Routers[s.svc.Router]
	if !ok {
		return fmt.Errorf("%s: router %q is not in %s", s.svc.Name, s.svc.Router, s.cfg.File)
	}
	s.routerListen = r.Listen
	if r.Type == config.RouterHAProxy {
		h, err := openHAProxy(s.cfg, r)
		if err != nil {
			return err
		}
		s.router, s.routerAdmin = h, h.Describe()
		return nil
	}
	network, addr := s.cfg.AdminAddr(r)
	if network == "unix" {
		addr = "unix:" + addr
	}
	token := ""
	if r.TokenFile != "" {
		t, err := router.ReadTokenFile(s.cfg.Resolve(r.TokenFile))
		if err != nil {
			return fmt.Errorf("router %s: %w", r.Name, err)
		}
		token = t
	}
	c, err := router.Dial(addr, token)
	if err != nil {
		return fmt.Errorf("router %s at %s: %w", r.Name, addr, err)
	}
	s.router = builtinRouter{c}
	s.routerAdmin = addr
	return nil
}

// openHAProxy makes the adapter of an haproxy router; its ledger (lock
// and last table) lives in the config's state directory.
func openHAProxy(cfg *config.Config, r *config.Router) (*haproxy.Router, error) {
	h, err := haproxy.New(haproxy.Options{Name: r.Name, Socket: cfg.Resolve(r.Socket), Backend: r.Backend, Map: r.Map, StateDir: cfg.StateDir()})
	if err != nil {
		return nil, fmt.Errorf("router %s: %w", r.Name, err)
	}
	return h, nil
}

// checkRouter makes sure the service's router answers, so a release or a
// plan fails up front, with what to do, rather than at its first step.
func (s *service) checkRouter(ctx context.Context) error {
	if err := s.router.Ping(ctx); err != nil {
		return s.routerDown(err)
	}
	return nil
}

// routerDown explains a router that does not answer. An HAProxy that
// answers but no longer holds cutover's table (restarted, drifted) is not
// down: its error says what happened and what to run.
func (s *service) routerDown(err error) error {
	if r := s.cfg.Routers[s.svc.Router]; r != nil && r.Type == config.RouterHAProxy {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if s.router != nil && s.router.Ping(ctx) == nil {
			return fmt.Errorf("router %s (%s): %w", s.svc.Router, s.routerAdmin, err)
		}
		return fmt.Errorf("router %s (%s) does not answer: %w; check that HAProxy runs with `stats socket %s level admin`, has backend %s and loads map %s, or check routers.%s in %s",
			s.svc.Router, s.routerAdmin, err, s.cfg.Resolve(r.Socket), r.Backend, r.Map, s.svc.Router, s.cfg.File)
	}
	return fmt.Errorf("router %s (%s) does not answer: %w; start it with `cutover router %s`, or check routers.%s in %s",
		s.svc.Router, s.routerAdmin, err, s.svc.Router, s.svc.Router, s.cfg.File)
}

// Close releases the connections, after the last notifications.
func (s *service) Close() {
	s.hooks.close()
	if s.router != nil {
		s.router.Close()
	}
	closeHost(s.platform, s.swarm)
	if s.dock != nil && s.dock.made.Load() {
		if p, sw, err := s.dock.get(); err == nil && p != s.platform {
			closeHost(p, sw)
		}
	}
}

// connected waits for a connection still being made (openServiceWith's
// fast), so platform and swarm are set.
func (s *service) connected() error {
	if s.platform != nil || s.dock == nil {
		return nil
	}
	p, sw, err := s.dock.get()
	if err != nil {
		return err
	}
	s.platform, s.swarm = p, sw
	return nil
}

// instances is the platform the service's instances run on: the Docker
// host's engine, or the swarm it manages.
func (s *service) instances() engine.Platform {
	switch {
	case s.swarm != nil:
		return s.swarm
	case s.platform != nil:
		return s.platform
	}
	return nil
}

// connectHost connects to the Docker host of the environment (DOCKER_HOST)
// and, for a service on platform swarm, to the swarm it manages, whose
// nodes pull registry images with auth's login (nil: anonymously).
func connectHost(ctx context.Context, svc *config.Service, auth swarm.RegistryAuth) (*docker.Platform, *swarm.Platform, error) {
	d, err := docker.New(ctx)
	if err != nil {
		return nil, nil, err
	}
	if svc.Platform != config.PlatformSwarm {
		return d, nil, nil
	}
	sw, err := swarm.NewWithDocker(ctx, d, swarm.Options{Auth: auth})
	if err != nil {
		d.Close()
		return nil, nil, fmt.Errorf("%s (platform: swarm): %w", svc.Name, err)
	}
	return d, sw, nil
}

// closeHost closes what connectHost made (the swarm closes its engine).
func closeHost(d *docker.Platform, sw *swarm.Platform) {
	switch {
	case sw != nil:
		sw.Close()
	case d != nil:
		d.Close()
	}
}

// nodeLogin is the login a swarm's nodes pull the service's images with:
// its ECR registry's, made when a launch first needs it, so that a command
// launching nothing (a rollback's swap) never waits for AWS. nil for a
// service whose images are local.
func (s *service) nodeLogin() swarm.RegistryAuth {
	if s.svc.Platform != config.PlatformSwarm || s.svc.Source.Type != config.SourceECR {
		return nil
	}
	return registryLogin(func(ctx context.Context) (*ecr.Registry, error) { return s.ecrRegistry(ctx) })
}

// registryLogin gives the login of the registry it returns.
type registryLogin func(ctx context.Context) (*ecr.Registry, error)

// RegistryAuth is the registry's login for ref.
func (l registryLogin) RegistryAuth(ctx context.Context, ref string) (string, error) {
	reg, err := l(ctx)
	if err != nil {
		return "", fmt.Errorf("ECR login: %w", err)
	}
	return reg.RegistryAuth(ctx, ref)
}

// dockerConn is a connection to the Docker host (and its swarm, see
// connectHost) made when it is first used.
type dockerConn struct {
	connect func() (*docker.Platform, *swarm.Platform, error)
	once    sync.Once
	made    atomic.Bool
	p       *docker.Platform
	sw      *swarm.Platform
	err     error
}

// connectDocker prepares a connection made on its first use: a rollback
// uses it only after its swap, and connecting sooner would take CPU from
// the swap on a busy host.
func connectDocker(ctx context.Context, svc *config.Service, auth swarm.RegistryAuth) *dockerConn {
	return &dockerConn{connect: func() (*docker.Platform, *swarm.Platform, error) {
		return connectHost(context.WithoutCancel(ctx), svc, auth)
	}}
}

func (c *dockerConn) get() (*docker.Platform, *swarm.Platform, error) {
	c.once.Do(func() {
		c.p, c.sw, c.err = c.connect()
		c.made.Store(true)
	})
	return c.p, c.sw, c.err
}

// platform waits for the connection and returns where instances run.
func (c *dockerConn) platform() (engine.Platform, error) {
	p, sw, err := c.get()
	switch {
	case err != nil:
		return nil, err
	case sw != nil:
		return sw, nil
	}
	return p, nil
}

// Instances waits for the connection, then lists the service's instances.
func (c *dockerConn) Instances(ctx context.Context, service string) ([]engine.Instance, error) {
	p, err := c.platform()
	if err != nil {
		return nil, err
	}
	return p.Instances(ctx, service)
}

// Launch waits for the connection, then launches.
func (c *dockerConn) Launch(ctx context.Context, spec engine.InstanceSpec) (engine.Instance, error) {
	p, err := c.platform()
	if err != nil {
		return engine.Instance{}, err
	}
	return p.Launch(ctx, spec)
}

// Stop waits for the connection, then stops the instance.
func (c *dockerConn) Stop(ctx context.Context, id string, grace time.Duration) error {
	p, err := c.platform()
	if err != nil {
		return err
	}
	return p.Stop(ctx, id, grace)
}

// Health waits for the connection, then probes the instance.
func (c *dockerConn) Health(ctx context.Context, id string, check engine.HealthCheck) (engine.Health, error) {
	p, err := c.platform()
	if err != nil {
		return engine.Health{}, err
	}
	return p.Health(ctx, id, check)
}

// deps wires the adapters into the engine. An ECR service's image is
// pulled onto the Docker host before the release changes anything.
func (s *service) deps() engine.Deps {
	d := engine.Deps{
		Platform:   s.instances(),
		Router:     s.router,
		Journal:    s.journal,
		OwnerAlive: journal.OwnerAlive,
	}
	if s.platform == nil && s.dock != nil {
		d.Platform = s.dock
	}
	if s.ecr != nil {
		d.Puller = ecr.NewPuller(s.ecr, s.platform)
	}
	s.hooks.apply(&d)
	return d
}

// ecrRegistry returns the service's ECR registry, or nil for a service
// whose images come from the local Docker host.
func (s *service) ecrRegistry(ctx context.Context) (*ecr.Registry, error) {
	src := s.svc.Source
	if src.Type != config.SourceECR {
		return nil, nil
	}
	s.ecrMu.Lock()
	defer s.ecrMu.Unlock()
	if s.ecr == nil {
		reg, err := ecr.New(ctx, ecr.Config{Repository: src.Repository, Region: src.Region, Profile: src.Profile,
			RegistryID: src.RegistryID, Endpoint: src.Endpoint, TagFilter: src.TagFilter, Semver: src.Semver})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.svc.Name, err)
		}
		s.ecr = reg
	}
	return s.ecr, nil
}

// registry is where the service's candidate images are listed, and the
// repository to list there.
func (s *service) registry(ctx context.Context) (engine.Registry, string, error) {
	reg, err := s.ecrRegistry(ctx)
	if err != nil {
		return nil, "", err
	}
	if reg != nil {
		return reg, s.svc.Source.Repository, nil
	}
	return s.localImages(), s.svc.Image, nil
}

// localImages lists the Docker host's images of the service as its
// source asks: only tags matching tag_filter, in semantic-version order
// with semver (ECR applies both itself).
func (s *service) localImages() engine.Registry {
	var re *regexp.Regexp
	if f := s.svc.Source.TagFilter; f != "" {
		re = regexp.MustCompile(f) // config check compiled it
	}
	return localImages{s.platform, re, s.svc.Source.Semver}
}

type localImages struct {
	p      *docker.Platform
	filter *regexp.Regexp
	semver bool
}

// ListImages lists repo's images on the Docker host, filtered and ordered.
func (l localImages) ListImages(ctx context.Context, repo string) ([]engine.Image, error) {
	imgs, err := l.p.ListImages(ctx, repo)
	if err != nil {
		return nil, err
	}
	out := imgs[:0]
	for _, img := range imgs {
		if img, ok := engine.FilterTags(img, l.filter); ok {
			out = append(out, img)
		}
	}
	engine.SortImages(out, l.semver)
	return out, nil
}

// resolveECR resolves a tag (or sha256: digest) through ECR and pins it:
// "<registry>/<repo>@sha256:…", pulled before the release by deps' Puller.
func (s *service) resolveECR(ctx context.Context, reg *ecr.Registry, arg string) (engine.Target, error) {
	repo := s.svc.Source.Repository
	img, err := reg.Resolve(ctx, repo, arg)
	if err != nil {
		return engine.Target{}, err
	}
	ref, err := reg.ImageRef(ctx, repo, img.Digest)
	if err != nil {
		return engine.Target{}, err
	}
	version := arg
	if strings.HasPrefix(arg, "sha256:") {
		version = engine.ShortDigest(img.Digest)
		if len(img.Tags) > 0 {
			version = img.Tags[0]
		}
	}
	return engine.Target{Image: ref, Version: version, Digest: img.Digest}, nil
}

// openJournal opens the journal in the config's state directory.
func openJournal(cfg *config.Config) (engine.Journal, error) {
	dir := cfg.StateDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return journal.Open(filepath.Join(dir, "journal.db"))
}

// specOf converts a service's config into the engine's settings.
func specOf(s *config.Service) engine.ServiceSpec {
	spec := engine.ServiceSpec{
		Name:     s.Name,
		Replicas: s.Replicas,
		Port:     s.Port,
		Env:      s.Env,
		Command:  s.Command,
		Network:  s.Network,
		Health: engine.HealthCheck{
			Path:      s.Health.Path,
			Interval:  s.Health.Interval,
			Timeout:   s.Health.Timeout,
			Successes: s.Health.Successes,
			Failures:  s.Health.Failures,
		},
		StartTimeout: s.StartTimeout,
		DrainTimeout: s.DrainTimeout,
		StopGrace:    s.StopGrace,
		OnFailure: engine.FailurePolicy{
			BeforeTraffic: engine.FailureAction(s.OnFailure.BeforeTraffic),
			AfterTraffic:  engine.FailureAction(s.OnFailure.AfterTraffic),
		},
		Strategy: engine.StrategySpec{
			Type: engine.StrategyType(s.Strategy.Type),
			Rolling: engine.RollingSpec{
				BatchSize:      s.Strategy.Rolling.BatchSize,
				MaxSurge:       s.Strategy.Rolling.MaxSurge,
				MaxUnavailable: s.Strategy.Rolling.MaxUnavailable,
				Pause:          s.Strategy.Rolling.Pause,
			},
			BlueGreen: engine.BlueGreenSpec{
				SmokePath:      s.Strategy.BlueGreen.SmokePath,
				Approval:       s.Strategy.BlueGreen.Approval,
				RollbackWindow: s.Strategy.BlueGreen.RollbackWindow,
			},
			Canary: engine.CanarySpec{Instances: s.Strategy.Canary.Instances},
		},
	}
	if sw := s.Swarm; sw != nil {
		spec.Placement = sw.Constraints
		spec.Resources = engine.Resources{
			LimitCPUs: sw.Limits.CPUs, LimitMemory: sw.Limits.MemoryBytes(),
			ReserveCPUs: sw.Reservations.CPUs, ReserveMemory: sw.Reservations.MemoryBytes(),
		}
	}
	for _, st := range s.Strategy.Canary.Steps {
		cs := engine.CanaryStep{Weight: engine.NoShift}
		if st.Weight != nil {
			cs.Weight = *st.Weight
		}
		switch {
		case st.Approval:
			cs.Gate = engine.Gate{Kind: engine.GateApproval}
		case st.Pause > 0:
			cs.Gate = engine.Gate{Kind: engine.GatePause, Pause: st.Pause}
		case st.Analysis != nil:
			cs.Gate = engine.Gate{Kind: engine.GateAnalysis, Analysis: analysisOf(*st.Analysis)}
		case st.Webhook != nil:
			cs.Gate = engine.Gate{Kind: engine.GateWebhook, Webhook: engine.WebhookSpec{
				URL: st.Webhook.URL, Timeout: st.Webhook.Timeout, SecretFile: st.Webhook.SecretFile}}
		}
		spec.Strategy.Canary.Steps = append(spec.Strategy.Canary.Steps, cs)
	}
	return spec
}

func analysisOf(a config.Analysis) engine.AnalysisSpec {
	return engine.AnalysisSpec{
		Window:               a.Window,
		MaxErrorRate:         a.MaxErrorRate,
		MaxP99:               a.MaxP99,
		MaxErrorRateVsStable: a.MaxErrorRateVsStable,
		MaxP99VsStable:       a.MaxP99VsStable,
		MinRequests:          int64(a.MinRequests),
		Queries:              queriesOf(a.Queries),
	}
}

func queriesOf(qs []config.Query) []engine.QuerySpec {
	var out []engine.QuerySpec
	for _, q := range qs {
		out = append(out, engine.QuerySpec{Name: q.Name, Query: q.Query, Min: q.Min, Max: q.Max, Interval: q.Interval,
			FailureLimit: q.FailureLimit, InconclusiveLimit: q.InconclusiveLimit, ConsecutiveErrorLimit: q.ConsecutiveErrorLimit})
	}
	return out
}

// resolveTarget turns the IMAGE argument into what the engine runs: a full
// reference, or a bare tag of the service's repository. The image is pinned
// by its id, so a tag moved during the release changes nothing.
func (s *service) resolveTarget(ctx context.Context, arg string) (engine.Target, error) {
	reg, err := s.ecrRegistry(ctx)
	if err != nil {
		return engine.Target{}, err
	}
	if reg != nil && (!strings.ContainsAny(arg, ":@/") || strings.HasPrefix(arg, "sha256:")) {
		return s.resolveECR(ctx, reg, arg)
	}
	ref := arg
	if !strings.ContainsAny(arg, ":@/") {
		ref = s.svc.Image + ":" + arg
	}
	img, err := s.platform.ImageInfo(ctx, ref)
	if err != nil {
		return engine.Target{}, err
	}
	// The version is the tag named, else the image's first tag in its
	// repository (for a digest or an image id), else its short digest.
	version := ""
	if !strings.HasPrefix(ref, "sha256:") && !strings.Contains(ref, "@") {
		if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
			version = ref[i+1:]
		}
	}
	if version == "" && len(img.Tags) > 0 {
		version = img.Tags[0]
	}
	if version == "" {
		version = engine.ShortDigest(img.Digest)
	}
	return engine.Target{Image: s.pinned(ctx, img), Version: version, Digest: img.Digest}, nil
}

// pinned names img by content: repo@digest where the image came from a
// registry, its local image id otherwise.
func (s *service) pinned(ctx context.Context, img engine.Image) string {
	if ref := img.Repository + "@" + img.Digest; img.Repository != "" {
		if _, err := s.platform.ImageInfo(ctx, ref); err == nil {
			return ref
		}
	}
	return img.Digest
}

// actor says who runs a release: the user, the host and, over SSH, the client.
func actor() engine.Actor {
	a := engine.Actor{}
	if u, err := user.Current(); err == nil {
		a.User = u.Username
	}
	if a.User == "" {
		a.User = os.Getenv("USER")
	}
	a.Host, _ = os.Hostname()
	for _, v := range []string{"SSH_CLIENT", "SSH_CONNECTION"} {
		if f := strings.Fields(os.Getenv(v)); len(f) > 0 {
			a.Remote = f[0]
			break
		}
	}
	return a
}

// hostname is this machine's name, as leases record it.
func hostname() string {
	h, _ := os.Hostname()
	return h
}

// extraLabels reads CUTOVER_LABELS ("k=v,k2=v2"): labels put on every
// container and demo image cutover makes, for cost tracking or, in tests,
// for finding and removing what a test made.
func extraLabels() (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(os.Getenv("CUTOVER_LABELS"), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("CUTOVER_LABELS: %q is not KEY=VALUE", kv)
		}
		m[k] = v
	}
	return m, nil
}
