// Package notify tells other systems about releases over HTTP: webhook
// notifications of every release event worth telling (Notifier, an
// engine.Notifier), and the calls of webhook gates (Caller, an
// engine.Webhooks).
//
// Both send the same signed JSON body (Payload). Notifications are
// delivered beside the release — queued per target, in order, retried
// with backoff — and never slow it down; what could not be delivered is
// journaled with the release (engine.EventNotifyFailed).
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/cutover/cutover/engine"
)

// SchemaVersion is the version of Payload's JSON; it changes only when a
// field changes meaning or goes away.
const SchemaVersion = 1

// Headers of every request.
const (
	HeaderSignature = "X-Cutover-Signature-256" // "sha256=" + hex HMAC-SHA256 of the body, with the target's secret
	HeaderDelivery  = "X-Cutover-Delivery"      // the delivery id, the same on every attempt
	HeaderEvent     = "X-Cutover-Event"         // the event's kind
	HeaderAttempt   = "X-Cutover-Attempt"       // 1, 2, …
)

// Payload is the JSON body sent about one event.
type Payload struct {
	SchemaVersion int    `json:"schema_version"`
	DeliveryID    string `json:"delivery_id"`
	// Summary is one line for people: "web 1.0.0 → 1.1.0: rolling back to
	// 1.0.0: rollback by alice@ops (by alice@ops)".
	Summary string       `json:"summary"`
	Release *Release     `json:"release,omitempty"`
	Event   engine.Event `json:"event"`
}

// Release is what a payload says of the release an event belongs to,
// from the journal.
type Release struct {
	ID       string              `json:"id"`
	Service  string              `json:"service"`
	Kind     engine.ReleaseKind  `json:"kind"`
	From     string              `json:"from,omitempty"` // the stable version
	To       string              `json:"to"`
	Image    string              `json:"image,omitempty"`
	Strategy engine.StrategyType `json:"strategy,omitempty"`
	By       engine.Actor        `json:"by"` // who started it
}

// Sign is the signature header's value for body: "sha256=" and the hex
// HMAC-SHA256 of body with secret. Receivers compute the same and compare
// in constant time (hmac.Equal).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// ParseTemplate reads a target's body template: text/template over a
// Payload, with json (a value as JSON, strings quoted) among its
// functions. It renders an example payload to check the template, and
// the result must be JSON.
func ParseTemplate(text string) (*template.Template, error) {
	t, err := template.New("body").Option("missingkey=error").Funcs(template.FuncMap{"json": toJSON}).Parse(text)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, ExamplePayload); err != nil {
		return nil, err
	}
	if !json.Valid(b.Bytes()) {
		return nil, fmt.Errorf("renders %.120q, which is not JSON", b.String())
	}
	return t, nil
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// ExamplePayload is what a template is checked against.
var ExamplePayload = Payload{SchemaVersion: SchemaVersion, DeliveryID: "d-0123456789abcdef",
	Summary: `web 1.0.0 → 1.1.0: gate-passed: analysis passed: error rate 0.2% ≤ 1%, 1,234 requests`,
	Release: &Release{ID: "web-20250102T150405-3fa2", Service: "web", Kind: engine.KindDeploy, From: "1.0.0", To: "1.1.0",
		Strategy: engine.Canary, By: engine.Actor{User: "alice", Host: "ops"}},
	Event: engine.Event{Seq: 12, Release: "web-20250102T150405-3fa2", Service: "web", Kind: engine.EventGatePassed, Step: 3,
		State: engine.ReleaseRunning, Message: "analysis passed: error rate 0.2% ≤ 1%, 1,234 requests",
		Actor: &engine.Actor{User: "alice", Host: "ops"}}}

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
	releases map[string]*Release
}

func newSender(j engine.Journal, client *http.Client) *sender {
	if client == nil {
		client = &http.Client{}
	}
	return &sender{journal: j, client: client, releases: map[string]*Release{}}
}

// payload is the body of a delivery of ev.
func (s *sender) payload(ctx context.Context, ev engine.Event) Payload {
	p := Payload{SchemaVersion: SchemaVersion, DeliveryID: newDeliveryID(), Event: ev, Release: s.release(ctx, ev.Release)}
	what := ev.Service
	if r := p.Release; r != nil {
		from := r.From
		if from == "" {
			from = "nothing"
		}
		what += " " + from + " → " + r.To
	}
	p.Summary = what + ": " + string(ev.Kind) + ": " + strings.ReplaceAll(strings.TrimSpace(ev.Message), "\n", "; ")
	if ev.Error != "" && !strings.Contains(ev.Message, ev.Error) {
		p.Summary += ": " + ev.Error
	}
	if ev.Actor != nil {
		p.Summary += " (by " + ev.Actor.String() + ")"
	}
	return p
}

// release is the journal's summary of release id, read once.
func (s *sender) release(ctx context.Context, id string) *Release {
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
	r = &Release{ID: rec.ID, Service: rec.Service, Kind: rec.Kind, From: rec.Stable().Version, To: rec.To.Version,
		Image: rec.To.Image, Strategy: rec.Strategy, By: rec.Actor}
	s.mu.Lock()
	s.releases[id] = r
	s.mu.Unlock()
	return r
}

// body renders p: as JSON, or through the target's template.
func body(p Payload, tmpl *template.Template) ([]byte, error) {
	if tmpl == nil {
		return json.Marshal(p)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, p); err != nil {
		return nil, fmt.Errorf("render the body template: %w", err)
	}
	return b.Bytes(), nil
}

// post sends one attempt; nil means a 2xx answer.
func (s *sender) post(ctx context.Context, target string, timeout time.Duration, secret, body []byte, p Payload, attempt int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cutover")
	req.Header.Set(HeaderDelivery, p.DeliveryID)
	req.Header.Set(HeaderEvent, string(p.Event.Kind))
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

func newDeliveryID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "d-" + hex.EncodeToString(b)
}
