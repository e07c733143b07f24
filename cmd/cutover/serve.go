package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	gossh "golang.org/x/crypto/ssh"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
)

func newServeCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve [--listen ADDR]",
		Short: "Serve the console over SSH to many operators; releases belong to the server",
		Long: `serve is a long-running process (run it under systemd) that owns releases
and serves the console to any number of SSH clients: ssh -p 2222 cutover@HOST.
The public key a client authenticates with says who it is and what its role
lets it do (serve.users and serve.authorized_keys in the config): a viewer sees
everything and changes nothing, an operator also approves, pauses, resumes,
promotes and rolls back, a deployer also starts releases.

A release started from a session belongs to the server: a dropped connection
changes nothing, and every session sees the same release live. "cutover
approve", "rollback" and "status" from a shell reach the release serve owns
through its control socket in the state directory; an emergency rollback
still works when serve is dead or hung.

SIGTERM or SIGINT: sessions end, running releases stop where they are
(resumable: "u" in the console, or "cutover deploy"), and serve exits 0.
SIGHUP reads the keys again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd, listen) },
	}
	cmd.Flags().StringVar(&listen, "listen", "", "SSH address to listen on (default: serve.listen, 127.0.0.1:2222)")
	return cmd
}

// serveStopWithin bounds a graceful stop: sessions leaving, then the
// releases recording where they stopped.
const serveStopWithin = 30 * time.Second

func runServe(cmd *cobra.Command, listen string) error {
	cfg, err := loadConfigFlag(cmd)
	if err != nil {
		return err
	}
	if listen == "" {
		listen = cfg.Serve.Listen
	}
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return withCode(exitUsage, fmt.Errorf("--listen %q: want host:port", listen))
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	acc, err := loadAccess(cfg)
	if err != nil {
		return err
	}
	dir := filepath.Join(cfg.StateDir(), "serve")
	if err := privateDir(dir); err != nil {
		return err
	}
	hostKey := cfg.Resolve(cfg.Serve.HostKey)
	signer, err := ensureHostKey(hostKey)
	if err != nil {
		return err
	}
	core, err := newBackendCore(cfg)
	if err != nil {
		return err
	}
	defer core.Close()
	sock := filepath.Join(dir, "control.sock")
	core.owner = engine.Owner{Control: sock}
	control, err := listenControl(sock, core.runs)
	if err != nil {
		return err
	}
	defer control.Close()

	srv, err := newSSHServer(core, acc, signer, cfg.Serve.IdleTimeout, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w", listen, err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ssh.Serve(ln) }()
	log.Info("cutover serve: listening", "ssh", ln.Addr().String(), "control", sock,
		"host_key", gossh.FingerprintSHA256(signer.PublicKey()), "keys", acc.summary())
	if recs, err := core.journal.Releases(cmd.Context(), "", 50); err == nil {
		for _, rec := range interruptedReleases(recs) {
			log.Warn("interrupted release: a deployer's u resumes it, r rolls it back", "service", rec.Service, "release", rec.ID, "state", rec.State)
		}
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	why := ""
	for why == "" {
		select {
		case err := <-served:
			return fmt.Errorf("serve: ssh: %w", err)
		case <-cmd.Context().Done():
			why = "cancelled"
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				srv.reload(cmd)
				continue
			}
			why = sig.String()
		}
	}
	log.Info("cutover serve: stopping", "why", why, "releases", len(core.runs.List()))
	ctx, cancel := context.WithTimeout(context.Background(), serveStopWithin)
	defer cancel()
	srv.stop(ctx)
	if err := core.runs.Stop(ctx, engine.Actor{User: "cutover serve", Host: hostname()}); err != nil {
		log.Error("cutover serve: releases did not record where they stopped", "error", err)
		return err
	}
	log.Info("cutover serve: stopped; releases stopped where they were and can be resumed")
	return nil
}

// interruptedReleases are the latest releases of each service that did
// not finish and that nobody runs (engine.Interrupted, per service).
func interruptedReleases(recs []engine.ReleaseRecord) []engine.ReleaseRecord {
	seen := map[string]bool{}
	var out []engine.ReleaseRecord
	for _, r := range recs {
		if seen[r.Service] {
			continue
		}
		seen[r.Service] = true
		if rec, ok := engine.Interrupted([]engine.ReleaseRecord{r}); ok {
			out = append(out, rec)
		}
	}
	return out
}

// privateDir makes dir, only this user's: the control socket and the host
// key live in it.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("serve: state directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("serve: state directory: %w", err)
	}
	return nil
}

// ensureHostKey loads the server's host key from path, making an ed25519
// key there (mode 0600) on the first start, so clients see the same host
// key on every start.
func ensureHostKey(path string) (gossh.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		data, err = newHostKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: host key %s: %w", path, err)
	}
	signer, err := gossh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("serve: host key %s: %w", path, err)
	}
	return signer, nil
}

func newHostKey(path string) ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := gossh.MarshalPrivateKey(priv, "cutover serve host key")
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(block)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	pub, err := gossh.NewPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub))) + " cutover-serve\n"
	return data, os.WriteFile(path+".pub", []byte(line), 0o644)
}

// access is who may come in: every allowed key, by its wire form.
type access struct {
	keys map[string]config.AuthorizedKey
}

// loadAccess reads the config's users and its authorized_keys file. With
// no key at all nobody could log in, which is refused.
func loadAccess(cfg *config.Config) (*access, error) {
	keys, err := cfg.ServeKeys()
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: serve has no keys, so nobody could log in: add serve.users (or serve.authorized_keys), e.g.\n"+
			"serve:\n  users:\n    alice: {role: deployer, keys: [\"ssh-ed25519 AAAA… alice@laptop\"]}", cfg.File)
	}
	a := &access{keys: map[string]config.AuthorizedKey{}}
	for _, k := range keys {
		a.keys[string(k.Key.Marshal())] = k
	}
	return a, nil
}

// lookup finds the person a key belongs to.
func (a *access) lookup(k gossh.PublicKey) (config.AuthorizedKey, bool) {
	if k == nil {
		return config.AuthorizedKey{}, false
	}
	ak, ok := a.keys[string(k.Marshal())]
	return ak, ok
}

// summary is "alice deployer, bob viewer" for the log.
func (a *access) summary() string {
	roles := map[string]engine.Role{}
	for _, k := range a.keys {
		roles[k.User] = k.Role
	}
	var out []string
	for _, u := range slices.Sorted(maps.Keys(roles)) {
		out = append(out, u+" "+string(roles[u]))
	}
	return strings.Join(out, ", ")
}
