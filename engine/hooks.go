package engine

import (
	"context"
	"fmt"
	"time"
)

// Notifier hears every event of a release once it is journaled, to tell
// people about it (engine/notify's webhooks). Notify must return at once:
// delivery happens beside the release and never slows it.
type Notifier interface {
	Notify(ev Event)
}

// Webhooks asks another system whether a release may go on: the call a
// webhook gate makes (engine/notify). Ask returns nil when the hook
// answered 2xx within its timeout, and otherwise an error saying what
// came back.
type Webhooks interface {
	Ask(ctx context.Context, hook WebhookSpec, ev Event) error
}

// DefaultWebhookTimeout is how long a webhook gate waits for its answer.
const DefaultWebhookTimeout = 10 * time.Second

// WebhookSpec is a gate's HTTP check, as Flagger's confirm-promotion: the
// release goes on when URL answers a POST of the gate's event with 2xx
// within Timeout; any other answer, or none, fails the gate.
type WebhookSpec struct {
	URL     string        `json:"url"`
	Timeout time.Duration `json:"timeout,omitempty"` // 0: DefaultWebhookTimeout
	// SecretFile, when set, holds the key the request body is signed
	// with (HMAC-SHA256), as notifications are.
	SecretFile string `json:"secret_file,omitempty"`
}

func (w WebhookSpec) timeout() time.Duration {
	if w.Timeout > 0 {
		return w.Timeout
	}
	return DefaultWebhookTimeout
}

// supports reports a plan's gate the deps cannot carry out: analysis
// queries without a metrics source, a webhook gate without a caller.
func (d Deps) supports(spec ServiceSpec) error {
	for i, st := range spec.Strategy.Canary.Steps {
		switch {
		case st.Gate.Kind == GateAnalysis && len(st.Gate.Analysis.Queries) > 0 && d.Metrics == nil:
			return fmt.Errorf("%s: canary step %d: the analysis has queries, and no metrics server is configured (prometheus.url)", spec.Name, i+1)
		case st.Gate.Kind == GateWebhook && d.Webhooks == nil:
			return fmt.Errorf("%s: canary step %d: a webhook gate, and nothing to call it with", spec.Name, i+1)
		}
	}
	return nil
}
