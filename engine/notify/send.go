// Package notify tells other systems about releases over HTTP: webhook
// notifications of every release event worth telling (Notifier, an
// engine.Notifier), and the calls of webhook gates (Caller, an
// engine.Webhooks).
//
// Both send the same signed JSON body (engine.Notice). Notifications are
// delivered beside the release — queued per target, in order, retried
// with backoff — and never slow it down; what could not be delivered is
// journaled with the release (engine.EventNotifyFailed).
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cutover/cutover/engine"
)

// Headers of every request.
const (
	HeaderSignature = "X-Cutover-Signature-256" // "sha256=" + hex HMAC-SHA256 of the body, with the target's secret
	HeaderDelivery  = "X-Cutover-Delivery"      // the delivery id, the same on every attempt
	HeaderEvent     = "X-Cutover-Event"         // the event's kind
	HeaderAttempt   = "X-Cutover-Attempt"       // 1, 2, …
)

// Sign is the signature header's value for body: "sha256=" and the hex
// HMAC-SHA256 of body with secret. Receivers compute the same and compare
// in constant time (hmac.Equal).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Redact keeps what a journal line may show of a URL: its scheme and
// host. Webhook URLs often carry a secret in their path (Slack's do).
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(a webhook URL)"
	}
	if p.Path == "" || p.Path == "/" {
		return p.Scheme + "://" + p.Host
	}
	return p.Scheme + "://" + p.Host + "/…"
}

// sender makes the HTTP requests of both notifications and gates, and
// remembers each release's summary from the journal.
type sender struct {
	journal engine.Journal
	client  *http.Client

	mu       sync.Mutex
	releases map[string]*engine.ReleaseRecord
}

func newSender(j engine.Journal, client *http.Client) *sender {
	if client == nil {
		client = &http.Client{}
	}
	return &sender{journal: j, client: client, releases: map[string]*engine.ReleaseRecord{}}
}

// notice describes ev, with its release's record from the journal.
func (s *sender) notice(ctx context.Context, ev engine.Event) engine.Notice {
	return engine.NewNotice(ev, s.release(ctx, ev.Release))
}

// release is the journal's record of release id, read once: a notice
// uses only what does not change (versions, strategy, who started it).
func (s *sender) release(ctx context.Context, id string) *engine.ReleaseRecord {
	s.mu.Lock()
	r, ok := s.releases[id]
	s.mu.Unlock()
	if ok || s.journal == nil || id == "" {
		return r
	}
	rec, err := s.journal.Release(ctx, id)
	if err != nil {
		return nil // not cached: the next event asks again
	}
	s.mu.Lock()
	s.releases[id] = &rec
	s.mu.Unlock()
	return &rec
}

// post sends one attempt; nil means a 2xx answer.
func (s *sender) post(ctx context.Context, target string, timeout time.Duration, secret, body []byte, n engine.Notice, attempt int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cutover")
	req.Header.Set(HeaderDelivery, n.DeliveryID)
	req.Header.Set(HeaderEvent, string(n.Event.Kind))
	req.Header.Set(HeaderAttempt, fmt.Sprint(attempt))
	if len(secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(secret, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("no answer within %s", timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may hold a secret
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s", resp.Status)
	}
	return nil
}
