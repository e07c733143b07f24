package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine/haproxy"
	"github.com/cutover/cutover/engine/router"
)

// routerFlags are the settings of `cutover router`.
type routerFlags struct {
	listen          string
	admin           string
	state           string
	tokenFile       string
	holdOut         time.Duration
	shutdownTimeout time.Duration
	stickyCookie    string
	versionHeader   string
	maxReplayBody   int64
	dialTimeout     time.Duration
	logLevel        string
}

// newRouterCmd runs cutover's traffic router, the long-lived data plane that
// the engine drives through its admin API.
func newRouterCmd() *cobra.Command {
	var f routerFlags
	cmd := &cobra.Command{
		Use:   "router [NAME] [--listen ADDR --admin ADDR --state FILE --token-file FILE]",
		Short: "Run the traffic router (data plane) for one service",
		Long: `Run the traffic router: a reverse proxy that sends a service's requests to its
backends by smooth weighted round robin. The engine changes its route table
through the admin API (JSON over HTTP); the table is saved to --state on every
change and served again after a restart.

With NAME, the router's listen and admin addresses and token file come from
the config's routers.NAME (--config), and its state file is router-NAME.json
in the config's state directory; flags given as well win.

The admin address is either a unix socket (unix:/path/to.sock, 0600 from the
moment it exists; only a stale socket at that path is replaced) or a loopback
host:port, which requires --token-file: every admin request must then carry
"Authorization: Bearer <token>". The token file must be readable by its owner
only (chmod 600). Non-loopback admin addresses are refused.

A backend that refuses or resets a connection before answering is held out for
--hold-out, and the request is retried once on another backend when its body
(up to --max-replay-body) could be kept. With no backend available clients get
503 "cutover router: no backend for this service".

Canaries: --sticky-cookie NAME sets a cookie with the version a client got and
keeps later requests on that version while it has weight; --version-header
NAME lets a request force a version (503 if that version has no weight).

SIGTERM or SIGINT: stop accepting, let requests in flight finish (up to
--shutdown-timeout), exit 0.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if err := routerFromConfig(cmd, args[0], &f); err != nil {
					return err
				}
			}
			return runRouter(cmd.Context(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", ":8080", "public address to serve traffic on")
	fl.StringVar(&f.admin, "admin", "", "admin API address: unix:/path/to.sock or loopback host:port (required)")
	fl.StringVar(&f.state, "state", "", "file the route table is saved to and loaded from (required)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the admin bearer token, mode 0600 (required for a TCP admin address)")
	fl.DurationVar(&f.holdOut, "hold-out", router.DefaultHoldOut, "how long a backend that refused or reset a connection is skipped")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long requests in flight may take to finish")
	fl.StringVar(&f.stickyCookie, "sticky-cookie", "", "cookie name that keeps a client on the version it first got (off when empty)")
	fl.StringVar(&f.versionHeader, "version-header", "", "request header that forces a version, e.g. X-Cutover-Version (off when empty)")
	fl.Int64Var(&f.maxReplayBody, "max-replay-body", router.DefaultMaxReplayBody, "largest request body (bytes) kept so the request can be retried")
	fl.DurationVar(&f.dialTimeout, "dial-timeout", router.DefaultDialTimeout, "timeout for connecting to a backend")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.AddCommand(newRouterRestoreCmd())
	return cmd
}

// newRouterRestoreCmd applies cutover's table again to an HAProxy router
// that lost it. HAProxy keeps runtime changes only until it restarts or
// reloads; cutover notices (every read checks) and stops rather than
// write on top of HAProxy's config. This is the operator's way back.
func newRouterRestoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore NAME",
		Short: "Apply cutover's table again to an HAProxy router that lost it",
		Long: `restore applies cutover's route table again to the HAProxy of routers.NAME
(type haproxy) when HAProxy no longer holds it:

  - HAProxy restarted or reloaded: its servers, weights and cutover's record
    are gone. The last table this host applied (kept in the state directory)
    is applied again, with its epoch and writer, so a release paused on the
    restart can be resumed, or rolled back.
  - HAProxy's servers differ from cutover's record in the map (an apply cut
    short, or a change by hand): the recorded table is applied again.

When HAProxy's map holds a table at least as new as the one kept here (applied
from elsewhere since), that is the table checked and applied again. It says so
when there is nothing to restore. A builtin router needs none of this: it loads
its table from its state file when it starts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfigFlag(cmd)
			if err != nil {
				return err
			}
			r, ok := cfg.Routers[args[0]]
			if !ok {
				return withCode(exitUsage, fmt.Errorf("router %q is not in %s; it has %s", args[0], cfg.File, strings.Join(cfg.RouterNames(), ", ")))
			}
			if r.Type != config.RouterHAProxy {
				return withCode(exitUsage, fmt.Errorf("router %s is type %s: it loads its table from its state file when it starts; restore is for haproxy routers", r.Name, r.Type))
			}
			h, err := openHAProxy(cfg, r)
			if err != nil {
				return err
			}
			what, err := h.Restore(cmd.Context())
			if errors.Is(err, haproxy.ErrNothingToRestore) {
				fmt.Fprintln(cmd.OutOrStdout(), err)
				return nil
			}
			if err != nil {
				return fmt.Errorf("router %s: %w", r.Name, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), what)
			return nil
		},
	}
}

// routerFromConfig fills the flags not given from the config's router name.
func routerFromConfig(cmd *cobra.Command, name string, f *routerFlags) error {
	cfg, err := loadConfigFlag(cmd)
	if err != nil {
		return err
	}
	r, ok := cfg.Routers[name]
	if !ok {
		return withCode(exitUsage, fmt.Errorf("router %q is not in %s; it has %s", name, cfg.File, strings.Join(cfg.RouterNames(), ", ")))
	}
	if r.Type == config.RouterHAProxy {
		return withCode(exitUsage, fmt.Errorf("router %s is type haproxy: HAProxy is its data plane, driven over unix:%s; run HAProxy, not `cutover router` (`cutover router restore %s` applies cutover's table to it again after a restart)",
			name, cfg.Resolve(r.Socket), name))
	}
	fl := cmd.Flags()
	if !fl.Changed("listen") {
		f.listen = r.Listen
	}
	if !fl.Changed("admin") {
		network, addr := cfg.AdminAddr(r)
		if network == "unix" {
			addr = "unix:" + addr
		}
		f.admin = addr
	}
	if !fl.Changed("token-file") && r.TokenFile != "" {
		f.tokenFile = cfg.Resolve(r.TokenFile)
	}
	if !fl.Changed("state") {
		if err := os.MkdirAll(cfg.StateDir(), 0o755); err != nil {
			return fmt.Errorf("router: state directory: %w", err)
		}
		f.state = filepath.Join(cfg.StateDir(), "router-"+name+".json")
	}
	return nil
}

func runRouter(ctx context.Context, f routerFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if f.admin == "" || f.state == "" {
		return withCode(exitUsage, errors.New("router: --admin and --state are required"))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return withCode(exitUsage, fmt.Errorf("router: --log-level: %w", err))
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	token := ""
	if f.tokenFile != "" {
		t, err := router.ReadTokenFile(f.tokenFile)
		if err != nil {
			return withCode(exitUsage, fmt.Errorf("router: %w", err))
		}
		token = t
	}

	srv, err := router.New(router.Options{
		StatePath:     f.state,
		Token:         token,
		HoldOut:       f.holdOut,
		StickyCookie:  f.stickyCookie,
		VersionHeader: f.versionHeader,
		MaxReplayBody: f.maxReplayBody,
		DialTimeout:   f.dialTimeout,
		Logger:        logger,
	})
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	adminL, err := router.ListenAdmin(f.admin, token != "")
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("router: %w", err))
	}
	proxyL, err := net.Listen("tcp", f.listen)
	if err != nil {
		adminL.Close()
		return fmt.Errorf("router: listen: %w", err)
	}
	t := srv.Table()
	logger.Info("router started", "listen", proxyL.Addr().String(), "admin", f.admin, "state", f.state, "epoch", t.Epoch, "backends", len(t.Backends))

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- srv.ServeProxy(proxyL) }()
	go func() { errc <- srv.ServeAdmin(adminL) }()

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("router stopping: finishing requests in flight", "timeout", f.shutdownTimeout)
	case serveErr = <-errc:
		logger.Error("router failed", "err", serveErr)
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("router stopped")
	return nil
}
