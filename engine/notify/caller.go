package notify

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/cutover/cutover/engine"
)

// Caller makes webhook gates' calls (engine.Webhooks): one POST of the
// gate's event as an engine.Notice, signed like notifications; a 2xx answer
// within the hook's timeout lets the release go on.
type Caller struct {
	send *sender
	// resolve makes a hook's relative secret_file absolute (the config's
	// directory); nil leaves it as it is.
	resolve func(string) string
}

var _ engine.Webhooks = (*Caller)(nil)

// NewCaller returns a Caller that reads release summaries from j and
// secret files through resolve.
func NewCaller(j engine.Journal, client *http.Client, resolve func(string) string) *Caller {
	return &Caller{send: newSender(j, client), resolve: resolve}
}

// Ask calls hook about ev and returns nil on a 2xx answer.
func (c *Caller) Ask(ctx context.Context, hook engine.WebhookSpec, ev engine.Event) error {
	var secret []byte
	if f := hook.SecretFile; f != "" {
		if c.resolve != nil {
			f = c.resolve(f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read secret_file: %w", err)
		}
		secret = bytes.TrimSpace(b)
	}
	p := c.send.notice(ctx, ev)
	b, err := p.Body(nil)
	if err != nil {
		return err
	}
	timeout := hook.Timeout
	if timeout <= 0 {
		timeout = engine.DefaultWebhookTimeout
	}
	return c.send.post(ctx, hook.URL, timeout, secret, b, p, 1)
}
