package tui

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
)

func TestSparklineScalesToTheMaximumAndKeepsTheLastMinute(t *testing.T) {
	if got := sparkline([]float64{0, 1, 2, 4, 8}, 5); got != "▁▂▃▅█" {
		t.Fatalf("sparkline = %q", got)
	}
	if got := sparkline([]float64{0, 0}, 4); got != "  ▁▁" {
		t.Fatalf("idle sparkline = %q", got)
	}
	var r ring
	for i := range 100 {
		r.push(float64(i))
	}
	v := r.values()
	if len(v) != ringSize || v[0] != 40 || v[ringSize-1] != 99 || r.last() != 99 {
		t.Fatalf("ring kept %d values from %v to %v", len(v), v[0], v[len(v)-1])
	}
}

// panickingBackend is a backend whose History panics, like a bug in an adapter.
type panickingBackend struct{ *fakeBackend }

func (panickingBackend) History(context.Context, string, int) ([]engine.ReleaseRecord, error) {
	panic("boom")
}

// A panic in a backend call reaches the screen waiting for the answer as its
// error: the terminal survives and the screen stops waiting.
func TestPanicInACommandReachesTheScreenWaitingForIt(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.press("h")
	if h.m.busyLabel() == "" {
		t.Fatal("history is not shown as being read")
	}
	h.send(loadHistory(context.Background(), panickingBackend{h.b}, svc)())
	mustContain(t, h.view(), "internal error", "boom")
	if l := h.m.busyLabel(); l != "" {
		t.Fatalf("still %s after the panic", l)
	}
}

func TestErrorsSayWhatToDo(t *testing.T) {
	got := advise("read services", errDockerDown)
	if !strings.Contains(got, "is Docker running?") {
		t.Fatalf("advice: %s", got)
	}
	if got := advise("start", errors.New("read router state: dial tcp 127.0.0.1:9: connection refused")); !strings.Contains(got, "cutover router") {
		t.Fatalf("advice: %s", got)
	}
}
