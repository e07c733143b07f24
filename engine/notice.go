package engine

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
)

// NoticeSchemaVersion is the version of Notice's JSON; it changes only
// when a field changes meaning or goes away.
const NoticeSchemaVersion = 1

// Notice is what other systems are told about one event of a release:
// the body of a webhook notification or of a webhook gate's call.
type Notice struct {
	SchemaVersion int    `json:"schema_version"`
	DeliveryID    string `json:"delivery_id"` // unique per notice, the same on every attempt to deliver it
	// Summary is one line for people: "web 1.0.0 → 1.1.0: rolling-back:
	// rolling back to 1.0.0: rollback by bob@laptop (by bob@laptop)".
	Summary string         `json:"summary"`
	Release *NoticeRelease `json:"release,omitempty"`
	Event   Event          `json:"event"`
}

// NoticeRelease is what a notice says of the release its event belongs to.
type NoticeRelease struct {
	ID       string       `json:"id"`
	Service  string       `json:"service"`
	Kind     ReleaseKind  `json:"kind"`
	From     string       `json:"from,omitempty"` // the stable version
	To       string       `json:"to"`
	Image    string       `json:"image,omitempty"`
	Strategy StrategyType `json:"strategy,omitempty"`
	By       Actor        `json:"by"` // who started it
}

// NewNotice describes ev, of the release rec (nil when unknown), with a
// fresh delivery id.
func NewNotice(ev Event, rec *ReleaseRecord) Notice {
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	n := Notice{SchemaVersion: NoticeSchemaVersion, DeliveryID: "d-" + hex.EncodeToString(id), Event: ev}
	what := ev.Service
	if rec != nil {
		n.Release = &NoticeRelease{ID: rec.ID, Service: rec.Service, Kind: rec.Kind, From: rec.Stable().Version, To: rec.To.Version,
			Image: rec.To.Image, Strategy: rec.Strategy, By: rec.Actor}
		from := n.Release.From
		if from == "" {
			from = "nothing"
		}
		what += " " + from + " → " + rec.To.Version
	}
	n.Summary = what + ": " + string(ev.Kind) + ": " + strings.ReplaceAll(strings.TrimSpace(ev.Message), "\n", "; ")
	if ev.Error != "" && !strings.Contains(ev.Message, ev.Error) {
		n.Summary += ": " + ev.Error
	}
	if ev.Actor != nil {
		n.Summary += " (by " + ev.Actor.String() + ")"
	}
	return n
}

// Body renders the notice as JSON, or through tmpl (ParseNoticeTemplate).
func (n Notice) Body(tmpl *template.Template) ([]byte, error) {
	if tmpl == nil {
		return json.Marshal(n)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, n); err != nil {
		return nil, fmt.Errorf("render the body template: %w", err)
	}
	return b.Bytes(), nil
}

// ParseNoticeTemplate reads a notification target's body template:
// text/template over a Notice, with json (a value as JSON, strings quoted)
// among its functions, as in `{"text": {{json .Summary}}}` for Slack. It
// renders ExampleNotice to check the template: the result must be JSON.
func ParseNoticeTemplate(text string) (*template.Template, error) {
	t, err := template.New("body").Option("missingkey=error").Funcs(template.FuncMap{"json": toJSON}).Parse(text)
	if err != nil {
		return nil, err
	}
	b, err := ExampleNotice.Body(t)
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("renders %.120q, which is not JSON", b)
	}
	return t, nil
}

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// ExampleNotice is what a template is checked against.
var ExampleNotice = Notice{SchemaVersion: NoticeSchemaVersion, DeliveryID: "d-0123456789abcdef",
	Summary: `web 1.0.0 → 1.1.0: gate-passed: analysis passed: error rate 0.2% ≤ 1%, 1,234 requests`,
	Release: &NoticeRelease{ID: "web-20250102T150405-3fa2", Service: "web", Kind: KindDeploy, From: "1.0.0", To: "1.1.0",
		Strategy: Canary, By: Actor{User: "alice", Host: "ops"}},
	Event: Event{Seq: 12, Release: "web-20250102T150405-3fa2", Service: "web", Kind: EventGatePassed, Step: 3,
		State: ReleaseRunning, Message: "analysis passed: error rate 0.2% ≤ 1%, 1,234 requests",
		Actor: &Actor{User: "alice", Host: "ops"}}}
