package engine

import (
	"slices"
	"testing"
	"time"
)

func TestPullProgressPassesAtMostOneLinePerLayerPerInterval(t *testing.T) {
	p := newPullProgress(time.Second)
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var got []string
	at := func(d time.Duration, line string) { got = append(got, p.add(t0.Add(d), line)...) }

	at(0, "a: Downloading 1/9")
	at(0, "b: Downloading 1/5")
	at(100*time.Millisecond, "a: Downloading 2/9")
	at(200*time.Millisecond, "a: Downloading 3/9") // replaces 2/9
	at(300*time.Millisecond, "b: Downloading 2/5")
	if want := []string{"a: Downloading 1/9", "b: Downloading 1/5"}; !slices.Equal(got, want) {
		t.Fatalf("within the first second: %q, want %q", got, want)
	}
	if out := p.flush(t0.Add(500 * time.Millisecond)); len(out) != 0 {
		t.Errorf("flush before a second passed: %q, want nothing", out)
	}
	if out, want := p.flush(t0.Add(time.Second)), []string{"a: Downloading 3/9", "b: Downloading 2/5"}; !slices.Equal(out, want) {
		t.Errorf("flush after a second: %q, want the latest line of each layer %q", out, want)
	}
	got = nil
	at(1500*time.Millisecond, "a: Download complete")
	if len(got) != 0 || !p.pending() {
		t.Errorf("a line half a second after the last flush passed: %q", got)
	}
	if out, want := p.flush(time.Time{}), []string{"a: Download complete"}; !slices.Equal(out, want) {
		t.Errorf("final flush: %q, want %q", out, want)
	}
	if p.pending() {
		t.Error("lines still waiting after the final flush")
	}
}
