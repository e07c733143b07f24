package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo"
	"github.com/cutover/cutover/engine/docker"
	"github.com/cutover/cutover/engine/haproxy"
	"github.com/cutover/cutover/engine/journal"
	"github.com/cutover/cutover/engine/router"
)

// demoHeader marks a cutover.yaml written by `cutover demo`, so --down
// removes only what the demo made.
const demoHeader = "# Written by `cutover demo`; `cutover demo --down` removes it.\n"

// demoService is the demo's service name.
const demoService = "demo"

// demoFlags are the settings of `cutover demo`.
type demoFlags struct {
	dir     string
	down    bool
	traffic int
	router  string // builtin or haproxy
	swarm   bool
}

func newDemoCmd() *cobra.Command {
	var f demoFlags
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Set up a playground on the local Docker engine: images, a router, a fleet",
		Long: `demo sets up a playground in one command, on the local Docker engine:

  - images cutover-demo:1.0.0 and 1.1.0 (good), 1.2.0-crash (exits at start),
    1.3.0-unhealthy (fails its health check) and 1.4.0-errors (answers 30% of
    requests with 500 after serving 20), built FROM scratch around this binary;
  - a cutover.yaml with a service "demo" (4 replicas, canary with analysis);
  - a router on a free loopback port that outlives this command: cutover's
    own, or with --router haproxy a real HAProxy (2.6+, from the PATH) that
    cutover drives over its runtime API;
  - a fleet of 4 × 1.0.0 behind it, and light background traffic (--traffic
    requests per second; 0 for none) so the router's figures and analysis
    gates have something to measure.

With --swarm the fleet runs on Docker Swarm (platform: swarm), each instance
a Swarm service; everything else is the same. An engine in no swarm is made
a one-node swarm (docker swarm init --advertise-addr 127.0.0.1), and
--down takes it out again; a swarm the engine is in already is used and kept.

"cutover demo --down" removes everything it made. The binary must be static
(CGO_ENABLED=0) to run inside the images.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.down {
				return demoDown(cmd, f)
			}
			return demoUp(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "dir", ".", "directory for cutover.yaml and the .cutover state directory")
	fl.BoolVar(&f.down, "down", false, "remove everything the demo made")
	fl.IntVar(&f.traffic, "traffic", 20, "background requests per second sent to the router (0: none)")
	fl.StringVar(&f.router, "router", string(config.RouterBuiltin), "the router to run: builtin (cutover router) or haproxy (HAProxy from the PATH)")
	fl.BoolVar(&f.swarm, "swarm", false, "run the fleet on Docker Swarm, making a one-node swarm if the engine is in none")
	return cmd
}

// demoPaths are where the demo keeps its files.
type demoPaths struct {
	dir, config, state, routerPID, routerLog, loadPID, loadLog string
	// HAProxy's config, runtime API socket and cutover's map, for
	// --router haproxy.
	haproxyConfig, haproxySocket, haproxyMap string
}

func pathsIn(dir string) (demoPaths, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return demoPaths{}, err
	}
	st := filepath.Join(abs, ".cutover")
	return demoPaths{
		dir:       abs,
		config:    filepath.Join(abs, "cutover.yaml"),
		state:     st,
		routerPID: filepath.Join(st, "router-main.pid"),
		routerLog: filepath.Join(st, "router-main.log"),
		loadPID:   filepath.Join(st, "demo-traffic.pid"),
		loadLog:   filepath.Join(st, "demo-traffic.log"),

		haproxyConfig: filepath.Join(st, "haproxy.cfg"),
		haproxySocket: filepath.Join(st, "haproxy.sock"),
		haproxyMap:    filepath.Join(st, "cutover.map"),
	}, nil
}

func demoUp(cmd *cobra.Command, f demoFlags) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	labels, err := extraLabels()
	if err != nil {
		return withCode(exitUsage, err)
	}
	p, err := pathsIn(f.dir)
	if err != nil {
		return err
	}
	kind := config.RouterType(f.router)
	switch kind {
	case config.RouterBuiltin:
	case config.RouterHAProxy:
		if _, err := exec.LookPath("haproxy"); err != nil {
			return withCode(exitUsage, fmt.Errorf("demo --router haproxy runs HAProxy 2.6 or later from the PATH: %w (Debian: apt-get install haproxy)", err))
		}
	default:
		return withCode(exitUsage, fmt.Errorf("demo: --router %q: want builtin or haproxy", f.router))
	}
	if b, err := os.ReadFile(p.config); err == nil && !bytes.HasPrefix(b, []byte(demoHeader)) {
		return fmt.Errorf("%s exists and was not written by cutover demo; run the demo in another directory (--dir)", p.config)
	}
	if pid, ok := livePID(p.routerPID); ok {
		return fmt.Errorf("the demo is already set up in %s (router pid %d); `cutover demo --down` removes it", p.dir, pid)
	}
	if err := os.MkdirAll(p.state, 0o755); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	plat, err := docker.New(ctx)
	if err != nil {
		return err
	}
	defer plat.Close()
	start := time.Now()
	swarmAbout := ""
	if f.swarm {
		if swarmAbout, err = demoSwarm(ctx, plat.Client(), p); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "building demo images FROM scratch around %s ...\n", exePath())
	refs, err := demo.BuildImages(ctx, plat.Client(), "", demo.Repo, labels, demo.Variants())
	if err != nil {
		return err
	}
	for _, v := range demo.Variants() {
		fmt.Fprintf(out, "  %-28s %s\n", refs[v.Tag], v.Note)
	}

	listen, err := freeLoopbackAddr()
	if err != nil {
		return fmt.Errorf("demo: find a free port for the router: %w", err)
	}
	text := demoConfig(listen, kind, p)
	if f.swarm {
		text = onSwarm(text)
	}
	if err := os.WriteFile(p.config, []byte(text), 0o644); err != nil {
		return fmt.Errorf("demo: write config: %w", err)
	}
	cfg, err := config.Load(p.config)
	if err != nil {
		return fmt.Errorf("demo: the config it wrote does not load (a bug): %w", err)
	}
	r := cfg.Routers[config.DefaultRouterName]
	var client engine.Router
	if kind == config.RouterHAProxy {
		h, err := startDemoHAProxy(ctx, cfg, r, p)
		if err != nil {
			return err
		}
		client = h
		fmt.Fprintf(out, "HAProxy listening on http://%s (runtime API unix:%s, backend %s)\n", listen, p.haproxySocket, r.Backend)
	} else {
		_, sock := cfg.AdminAddr(r)
		if err := startDetached(p.routerPID, p.routerLog, "router", "-c", p.config, r.Name, "--version-header", "X-Cutover-Version"); err != nil {
			return err
		}
		c, err := waitRouter(ctx, "unix:"+sock, 10*time.Second)
		if err != nil {
			return fmt.Errorf("demo: the router did not come up (log: %s): %w", p.routerLog, err)
		}
		defer c.Close()
		client = c
		fmt.Fprintf(out, "router listening on http://%s (admin unix:%s)\n", listen, sock)
	}

	// The first fleet is an ordinary release from nothing to 1.0.0.
	svc, _ := cfg.Service(demoService)
	spec := specOf(svc)
	spec.Strategy.Type = engine.Rolling
	spec.Labels = labels
	j, err := openJournal(cfg)
	if err != nil {
		return err
	}
	img, err := plat.ImageInfo(ctx, refs["1.0.0"])
	if err != nil {
		return err
	}
	fleet, _, closeFleet, err := demoFleetPlatform(ctx, plat, p)
	if err != nil {
		return err
	}
	defer closeFleet()
	if fleet == nil {
		return errors.New("demo: the engine left its swarm while the demo was being set up")
	}
	target := engine.Target{Image: img.Digest, Version: "1.0.0", Digest: img.Digest}
	rel, err := engine.New(engine.Deps{Platform: fleet, Router: client, Journal: j},
		spec, target, engine.Options{Actor: actor(), AutoApprove: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "launching %d × 1.0.0 ...\n", svc.Replicas)
	outcome, err := rel.Run(ctx)
	if err != nil || outcome != engine.Succeeded {
		return fmt.Errorf("demo: first release of 1.0.0 ended %s: %v (cutover history --release %s shows why)", outcome, err, rel.ID())
	}
	if f.traffic > 0 {
		if err := startDetached(p.loadPID, p.loadLog, "demo-traffic", "--rps", strconv.Itoa(f.traffic), "http://"+listen+"/"); err != nil {
			return err
		}
	}
	background := fmt.Sprintf("%d requests/s of background traffic running", f.traffic)
	if f.traffic <= 0 {
		background = "no background traffic: send some, or analysis gates stay inconclusive"
	}
	cfgArg := ""
	if rel, err := filepath.Rel(mustGetwd(), p.config); err != nil || rel != "cutover.yaml" {
		cfgArg = " -c " + p.config
	}
	// The hints name the binary as it was run ("./cutover" from the README's
	// build), so each line can be pasted as it is.
	c := invokedAs() + cfgArg
	fmt.Fprintf(out, `
The demo is up (%s).

  traffic:   curl http://%s/        (%s)
  status:    %s status demo
  release:   %s deploy demo 1.1.0 --auto          a canary to 1.1.0, fully automatic
             %s deploy demo 1.4.0-errors --auto   fails analysis and rolls back
             %s deploy demo 1.3.0-unhealthy --auto never gets traffic
  console:   %s
  undo:      %s rollback demo
  history:   %s history demo
  clean up:  %s demo --down%s
`, time.Since(start).Round(100*time.Millisecond), listen, background, c, c, c, c, c, c, c, invokedAs(), dirArg(f.dir))
	if f.swarm {
		fmt.Fprint(out, demoSwarmHint(ctx, plat.Client(), swarmAbout))
	}
	return nil
}

// invokedAs is the command this process was run as: "./cutover" after the
// README's build, "cutover" from the PATH.
func invokedAs() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return "cutover"
}

func dirArg(dir string) string {
	if dir == "." || dir == "" {
		return ""
	}
	return " --dir " + dir
}

func mustGetwd() string {
	wd, _ := os.Getwd()
	return wd
}

// demoConfig is the demo's cutover.yaml: a 4-replica service behind one
// router, with a canary whose analysis catches the erroring version.
func demoConfig(listen string, kind config.RouterType, p demoPaths) string {
	router := `
    admin: unix:.cutover/router-main.sock`
	if kind == config.RouterHAProxy {
		router = `
    type: haproxy
    socket: .cutover/haproxy.sock
    backend: ` + demoService + `
    map: ` + p.haproxyMap + `           # as .cutover/haproxy.cfg names it`
	}
	return demoHeader + `# A service "demo" of 4 instances behind the router below. Try:
#   cutover deploy demo 1.1.0 --auto
state_dir: .cutover
routers:
  main:
    listen: ` + listen + router + `
services:
  demo:
    image: ` + demo.Repo + `
    replicas: 4
    port: 8080
    health:
      path: /healthz
      interval: 500ms
      timeout: 1s
      successes: 2
      failures: 2
    start_timeout: 20s
    drain_timeout: 10s
    stop_grace: 2s
    on_failure:
      before_traffic: rollback
      after_traffic: rollback
    strategy:
      type: canary
      canary:
        instances: 1
        steps:
          - weight: 20
            analysis:
              window: 10s
              max_error_rate: 0.05
              min_requests: 20
          - weight: 50
            approval: true
          - weight: 100
      bluegreen:
        approval: true
        rollback_window: 30s
`
}

func demoDown(cmd *cobra.Command, f demoFlags) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	p, err := pathsIn(f.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, pidFile := range []string{p.loadPID, p.routerPID} {
		if err := stopDetached(pidFile); err != nil {
			errs = append(errs, err)
		}
	}
	plat, err := docker.New(ctx)
	if err != nil {
		return err
	}
	defer plat.Close()
	fleet, onSwarm, closeFleet, err := demoFleetPlatform(ctx, plat, p)
	defer closeFleet()
	var insts []engine.Instance
	if err == nil && fleet != nil {
		insts, err = fleet.Instances(ctx, demoService)
	}
	if err != nil {
		errs = append(errs, err)
	}
	for _, in := range insts {
		if err := fleet.Stop(ctx, in.ID, time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if onSwarm {
		fmt.Fprintf(out, "removed %d demo swarm services\n", len(insts))
		if err := waitTaskContainers(ctx, plat.Client()); err != nil {
			errs = append(errs, err)
		}
	} else {
		fmt.Fprintf(out, "removed %d demo containers\n", len(insts))
	}
	n, err := demo.RemoveRepo(ctx, plat.Client(), demo.Repo)
	if err != nil {
		errs = append(errs, err)
	}
	fmt.Fprintf(out, "removed %d demo images\n", n)
	if err := leaveDemoSwarm(ctx, plat.Client(), p, out); err != nil {
		errs = append(errs, err)
	}
	if b, err := os.ReadFile(p.config); err == nil && bytes.HasPrefix(b, []byte(demoHeader)) {
		if err := os.Remove(p.config); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(p.state); err != nil {
			errs = append(errs, err)
		}
		fmt.Fprintf(out, "removed %s and %s\n", p.config, p.state)
	}
	return errors.Join(errs...)
}

// startDemoHAProxy writes the demo's HAProxy config and an empty map in
// the state directory, starts HAProxy in a session of its own (its pid
// in the router's pid file, so --down stops it as it stops the builtin
// router) and waits until its runtime API answers.
func startDemoHAProxy(ctx context.Context, cfg *config.Config, r *config.Router, p demoPaths) (*haproxy.Router, error) {
	setup := haproxy.Setup{Listen: r.Listen, Socket: cfg.Resolve(r.Socket), Backend: r.Backend, Map: r.Map}
	if err := os.WriteFile(p.haproxyConfig, []byte(setup.Config()), 0o644); err != nil {
		return nil, fmt.Errorf("demo: write HAProxy config: %w", err)
	}
	if err := os.WriteFile(p.haproxyMap, nil, 0o644); err != nil {
		return nil, fmt.Errorf("demo: write HAProxy map: %w", err)
	}
	if err := startProgram(p.routerPID, p.routerLog, "haproxy", "-db", "-f", p.haproxyConfig); err != nil {
		return nil, err
	}
	h, err := openHAProxy(cfg, r)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := h.Ping(ctx)
		if err == nil {
			return h, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("demo: HAProxy did not come up (log: %s): %w", p.routerLog, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startDetached starts this binary with args in a session of its own, so it
// outlives the command (and the SSH session), logging to logFile.
func startDetached(pidFile, logFile string, args ...string) error {
	return startProgram(pidFile, logFile, exePath(), args...)
}

// startProgram starts prog with args as startDetached does.
func startProgram(pidFile, logFile, prog string, args ...string) error {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer log.Close()
	c := exec.Command(prog, args...)
	c.Stdout, c.Stderr = log, log
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("demo: start %s: %w", strings.Join(append([]string{filepath.Base(prog)}, args...), " "), err)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(c.Process.Pid)+"\n"), 0o644); err != nil {
		_ = c.Process.Kill()
		return fmt.Errorf("demo: %w", err)
	}
	return c.Process.Release()
}

// stopDetached ends a process started by startDetached: SIGTERM, then
// SIGKILL after a few seconds.
func stopDetached(pidFile string) error {
	pid, ok := livePID(pidFile)
	if !ok {
		_ = os.Remove(pidFile)
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 50 && journal.ProcessAlive(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if journal.ProcessAlive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return os.Remove(pidFile)
}

// livePID reads a pid file and reports whether that process still runs.
func livePID(pidFile string) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, journal.ProcessAlive(pid)
}

// waitRouter dials the router's admin API until it answers.
func waitRouter(ctx context.Context, addr string, within time.Duration) (*router.Client, error) {
	return waitRouterWith(ctx, addr, "", within)
}

// waitRouterWith is waitRouter for an admin API behind a bearer token.
func waitRouterWith(ctx context.Context, addr, token string, within time.Duration) (*router.Client, error) {
	deadline := time.Now().Add(within)
	for {
		c, err := router.Dial(addr, token)
		if err == nil {
			if _, err = c.Health(ctx); err == nil {
				return c, nil
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeLoopbackAddr finds a free port on 127.0.0.1.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func exePath() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return exe
}
