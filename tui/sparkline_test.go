package tui

import (
	"errors"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
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

func TestPanicInACommandBecomesAMessage(t *testing.T) {
	msg := safe(func() tea.Msg { panic("boom") })()
	em, ok := msg.(errMsg)
	if !ok || !strings.Contains(em.err.Error(), "boom") {
		t.Fatalf("got %#v", msg)
	}
	h := newHarness(t, 80, 24)
	h.send(em)
	mustContain(t, h.view(), "internal error", "boom")
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
