package notify_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
	"github.com/cutover/cutover/engine/notify"
)

// receiver records what it is sent; answer decides each reply.
type receiver struct {
	mu     sync.Mutex
	got    []delivery
	answer func(n int) int // status for the nth request (1-based)
	srv    *httptest.Server
}

type delivery struct {
	body                          []byte
	sig, id, kind, attempt, ctype string
}

func newReceiver(t *testing.T, answer func(n int) int) *receiver {
	r := &receiver{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{b, req.Header.Get(notify.HeaderSignature), req.Header.Get(notify.HeaderDelivery),
			req.Header.Get(notify.HeaderEvent), req.Header.Get(notify.HeaderAttempt), req.Header.Get("Content-Type")})
		n := len(r.got)
		r.mu.Unlock()
		status := http.StatusNoContent
		if r.answer != nil {
			status = r.answer(n)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// journalWith holds one running release, web 1.0.0 → 1.1.0.
func journalWith(t *testing.T) *enginetest.Journal {
	t.Helper()
	j := enginetest.NewJournal(&enginetest.Trace{})
	rec := engine.ReleaseRecord{ID: "web-1", Service: "web", Kind: engine.KindDeploy, Strategy: engine.Canary, State: engine.ReleaseRunning,
		From: []engine.VersionRef{{Version: "1.0.0"}}, To: engine.Target{Version: "1.1.0", Image: "img:1.1.0"},
		Actor: engine.Actor{User: "alice", Host: "ops"}, Owner: engine.Owner{PID: 1, Host: "h"}}
	if err := j.Begin(context.Background(), rec, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	return j
}

func event(seq int64, k engine.EventKind) engine.Event {
	return engine.Event{Seq: seq, Release: "web-1", Service: "web", Kind: k, Step: 1, State: engine.ReleaseRunning, Message: string(k) + " happened"}
}

func TestNotifierDeliversTheNotableEventsInOrderSignedAndDescribed(t *testing.T) {
	r := newReceiver(t, nil)
	secret := []byte("s3cret")
	n := notify.New([]notify.Target{{URL: r.srv.URL + "/hook", Secret: secret}}, notify.Options{Journal: journalWith(t)})
	kinds := []engine.EventKind{engine.EventStarted, engine.EventPlanned, engine.EventStepStarted, engine.EventLaunching,
		engine.EventApplied, engine.EventGateWaiting, engine.EventAnalysisProgress, engine.EventGatePassed, engine.EventFinished}
	for i, k := range kinds {
		n.Notify(event(int64(i+1), k))
	}
	n.Close(context.Background())

	want := []string{"started", "step-started", "gate-waiting", "gate-passed", "finished"}
	got := r.deliveries()
	if len(got) != len(want) {
		t.Fatalf("%d deliveries, want %d (%v)", len(got), len(want), want)
	}
	ids := map[string]bool{}
	for i, d := range got {
		var p engine.Notice
		if err := json.Unmarshal(d.body, &p); err != nil {
			t.Fatal(err)
		}
		if string(p.Event.Kind) != want[i] || d.kind != want[i] {
			t.Errorf("delivery %d is %s (header %s), want %s", i, p.Event.Kind, d.kind, want[i])
		}
		if !hmac.Equal([]byte(d.sig), []byte(notify.Sign(secret, d.body))) || !strings.HasPrefix(d.sig, "sha256=") {
			t.Errorf("delivery %d: signature %q does not match its body", i, d.sig)
		}
		if p.SchemaVersion != engine.NoticeSchemaVersion || p.DeliveryID == "" || p.DeliveryID != d.id || ids[d.id] || d.attempt != "1" || d.ctype != "application/json" {
			t.Errorf("delivery %d: %+v, headers id %q attempt %q", i, p, d.id, d.attempt)
		}
		ids[d.id] = true
		if p.Release == nil || p.Release.From != "1.0.0" || p.Release.To != "1.1.0" || p.Release.By.User != "alice" ||
			!strings.HasPrefix(p.Summary, "web 1.0.0 → 1.1.0: "+want[i]) {
			t.Errorf("delivery %d: release %+v, summary %q", i, p.Release, p.Summary)
		}
	}
}

func TestNotifierRetriesWithTheSameDeliveryID(t *testing.T) {
	r := newReceiver(t, func(n int) int {
		if n < 3 {
			return http.StatusBadGateway
		}
		return http.StatusOK
	})
	j := journalWith(t)
	n := notify.New([]notify.Target{{URL: r.srv.URL}}, notify.Options{Journal: j, Backoff: time.Millisecond})
	n.Notify(event(1, engine.EventStarted))
	n.Notify(event(2, engine.EventFinished))
	n.Close(context.Background())
	got := r.deliveries()
	if len(got) != 4 || got[0].id != got[2].id || got[2].attempt != "3" || got[3].kind != "finished" || got[3].attempt != "1" {
		t.Fatalf("deliveries %+v: want 3 attempts of started under one id, then finished", got)
	}
	if got[0].sig != "" {
		t.Error("a target without a secret signs nothing")
	}
	if evs, _ := j.Events(context.Background(), "web-1"); len(evs) != 0 {
		t.Errorf("journaled %v, though everything got through", evs)
	}
}

// A receiver that never answers: Notify still returns at once (a blocked
// call would hang this test), what overflows the queue is dropped, and
// every event that did not get through is journaled with the release,
// whose state and step stay as they were.
func TestAStuckReceiverNeverBlocksNotifyAndItsFailuresAreJournaled(t *testing.T) {
	stuck := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-stuck }))
	defer srv.Close()
	defer close(stuck)
	j := journalWith(t)
	n := notify.New([]notify.Target{{URL: srv.URL + "/T000/B000/secret-token", Timeout: 50 * time.Millisecond}},
		notify.Options{Journal: j, Queue: 8, Backoff: time.Millisecond, Attempts: 2})
	for i := range 100 {
		n.Notify(event(int64(i+1), engine.EventStepStarted))
	}
	// The first event uses its two attempts and is journaled; then Close
	// gives up at once on the failing target.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if evs, _ := j.Events(context.Background(), "web-1"); len(evs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first failure was never journaled")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n.Close(ctx)
	evs, err := j.Events(context.Background(), "web-1")
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, ev := range evs {
		if ev.Kind != engine.EventNotifyFailed {
			t.Fatalf("journaled %s", ev.Kind)
		}
		text = append(text, ev.Message)
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{"not delivered after 2 attempts: no answer within 50ms", "the queue of 8 was full", "/…",
		"not delivered (step-started, step-started", "the process ended before it was sent"} {
		if !strings.Contains(all, want) {
			t.Errorf("journal lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "secret-token") {
		t.Errorf("the journal shows the webhook URL's path, which may be a secret:\n%s", all)
	}
	rec, _ := j.Release(context.Background(), "web-1")
	if rec.State != engine.ReleaseRunning || rec.NotifyFailed != len(evs) {
		t.Errorf("record %+v after %d failures", rec, len(evs))
	}
}

// A receiver that is down: the first event uses its retries, the rest
// one attempt each until one gets through, and each failure is journaled.
func TestADownReceiverCostsOneAttemptPerEventAfterTheFirstFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	j := journalWith(t)
	n := notify.New([]notify.Target{{URL: down}}, notify.Options{Journal: j, Backoff: time.Millisecond})
	for i := range 5 {
		n.Notify(event(int64(i+1), engine.EventStepDone))
	}
	n.Close(context.Background())
	evs, _ := j.Events(context.Background(), "web-1")
	if len(evs) != 5 || !strings.Contains(evs[0].Message, "after 4 attempts") || !strings.Contains(evs[1].Message, "after 1 attempt:") ||
		!strings.Contains(evs[0].Message, "connection refused") {
		t.Fatalf("journaled %s", kindsAndMessages(evs))
	}
}

func kindsAndMessages(evs []engine.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString(string(ev.Kind) + ": " + ev.Message + "\n")
	}
	return b.String()
}

func TestATemplateRendersASlackBody(t *testing.T) {
	r := newReceiver(t, nil)
	tmpl, err := engine.ParseNoticeTemplate(`{"text": {{json .Summary}}}`)
	if err != nil {
		t.Fatal(err)
	}
	n := notify.New([]notify.Target{{URL: r.srv.URL, Template: tmpl, Secret: []byte("k")}}, notify.Options{Journal: journalWith(t)})
	ev := event(1, engine.EventRollingBack)
	ev.Message = `rolling back to 1.0.0: "rollback" by bob`
	ev.Actor = &engine.Actor{User: "bob", Host: "laptop"}
	n.Notify(ev)
	n.Close(context.Background())
	got := r.deliveries()
	var body struct{ Text string }
	if len(got) != 1 || json.Unmarshal(got[0].body, &body) != nil {
		t.Fatalf("deliveries %+v", got)
	}
	if body.Text != `web 1.0.0 → 1.1.0: rolling-back: rolling back to 1.0.0: "rollback" by bob (by bob@laptop)` || got[0].sig != notify.Sign([]byte("k"), got[0].body) {
		t.Errorf("body %q, signature %q", got[0].body, got[0].sig)
	}
}

func TestCallerPassesOn2xxOnlyAndSignsWithTheSecretFile(t *testing.T) {
	status := http.StatusOK
	var got delivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = delivery{body: b, sig: r.Header.Get(notify.HeaderSignature)}
		if r.URL.Path == "/slow" {
			time.Sleep(200 * time.Millisecond) // the slow receiver under test
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hook.secret"), []byte("gate-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := notify.NewCaller(journalWith(t), nil, func(p string) string { return filepath.Join(dir, p) })
	hook := engine.WebhookSpec{URL: srv.URL + "/confirm", SecretFile: "hook.secret", Timeout: time.Second}
	ev := event(7, engine.EventGateWaiting)
	if err := c.Ask(context.Background(), hook, ev); err != nil {
		t.Fatalf("2xx: %v", err)
	}
	var p engine.Notice
	if json.Unmarshal(got.body, &p) != nil || p.Event.Seq != 7 || got.sig != notify.Sign([]byte("gate-key"), got.body) {
		t.Errorf("payload %s, signature %q", got.body, got.sig)
	}
	status = http.StatusServiceUnavailable
	if err := c.Ask(context.Background(), hook, ev); err == nil || !strings.Contains(err.Error(), "answered 503 Service Unavailable") {
		t.Errorf("503: %v", err)
	}
	status = http.StatusOK
	slow := engine.WebhookSpec{URL: srv.URL + "/slow", Timeout: 50 * time.Millisecond}
	if err := c.Ask(context.Background(), slow, ev); err == nil || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("slow: %v", err)
	}
	missing := hook
	missing.SecretFile = "nope"
	if err := c.Ask(context.Background(), missing, ev); err == nil || !strings.Contains(err.Error(), "secret_file") {
		t.Errorf("missing secret: %v", err)
	}
}
