package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/notify"
	"github.com/cutover/cutover/engine/prometheus"
)

// notifyFlush is how long a process that ran releases waits, once they
// are over, for its last notifications to get through before it exits;
// what is still queued then is journaled as not delivered.
const notifyFlush = 5 * time.Second

// hooks are the adapters a release asks and tells other systems with:
// the Prometheus server of analysis queries, the caller of webhook gates
// and the notifier. One set serves every release of the process.
type hooks struct {
	metrics  engine.MetricsSource // nil without prometheus in the config
	webhooks *notify.Caller
	notifier *notify.Notifier // nil without notifications
}

// openHooks makes the config's hooks; secret and token files are read
// now, so a missing one stops a release before it starts.
func openHooks(cfg *config.Config, j engine.Journal) (*hooks, error) {
	h := &hooks{webhooks: notify.NewCaller(j, nil, cfg.Resolve)}
	if p := cfg.Prometheus; p != nil {
		token, err := readSecret(cfg, p.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("prometheus.token_file: %w", err)
		}
		c, err := prometheus.New(prometheus.Config{URL: p.URL, Token: string(token), Timeout: p.Timeout})
		if err != nil {
			return nil, err
		}
		h.metrics = c
	}
	var targets []notify.Target
	for i, n := range cfg.Notifications {
		secret, err := readSecret(cfg, n.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("notifications[%d].secret_file: %w", i, err)
		}
		t := notify.Target{URL: n.URL, Secret: secret, Timeout: n.Timeout}
		if n.Template != "" {
			if t.Template, err = engine.ParseNoticeTemplate(n.Template); err != nil {
				return nil, fmt.Errorf("notifications[%d].template: %w", i, err)
			}
		}
		targets = append(targets, t)
	}
	if len(targets) > 0 {
		h.notifier = notify.New(targets, notify.Options{Journal: j})
	}
	return h, nil
}

// readSecret reads a secret or token file ("" reads nothing), trimmed.
func readSecret(cfg *config.Config, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(cfg.Resolve(path))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", cfg.Resolve(path))
	}
	return b, nil
}

// apply puts the hooks into a release's deps.
func (h *hooks) apply(d *engine.Deps) {
	if h == nil {
		return
	}
	d.Metrics, d.Webhooks = h.metrics, h.webhooks
	if h.notifier != nil {
		d.Notifier = h.notifier
	}
}

// close gives the last notifications up to notifyFlush to get through.
func (h *hooks) close() {
	if h == nil || h.notifier == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notifyFlush)
	defer cancel()
	h.notifier.Close(ctx)
}

// openHooks connects s's hooks for a command that runs releases.
// A standalone rollback (lenient) goes on without them, saying why: no
// notification setting may stand between an operator and a rollback.
func (s *service) openHooks(warn io.Writer, lenient bool) error {
	h, err := openHooks(s.cfg, s.journal)
	if err != nil && lenient {
		fmt.Fprintf(warn, "warning: %s: %v; rolling back without notifications\n", s.cfg.File, strings.TrimSpace(err.Error()))
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.cfg.File, err)
	}
	s.hooks = h
	return nil
}
