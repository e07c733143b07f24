package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/cutover/cutover/engine"
)

// nextPage waits for the listing's next message through the relay.
func (h *harness) nextPage(cmd tea.Cmd) imagePageMsg {
	h.t.Helper()
	msg, ok := runQuick(cmd)
	if !ok {
		h.t.Fatal("no page arrived")
	}
	p, ok := msg.(imagePageMsg)
	if !ok {
		h.t.Fatalf("got %T, want a page", msg)
	}
	h.send(p)
	return p
}

func TestPickerShowsTheFirstPageBeforeTheLastArrives(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.b.hold = make(chan struct{})
	h.press("enter")
	mustContain(t, h.view(), "loading… 0 images so far", "reading the registry…")

	// Pages come oldest first: 1.0.0 and 0.9.0, then 1.2.0-rc1 and 1.1.0.
	first := h.nextPage(loadImagePages(context.Background(), h.b, svc, h.m.picker.listing))
	if first.done {
		t.Fatal("the first page ended the listing")
	}
	v := h.view()
	mustContain(t, v, "loading… 2 images so far", "1.0.0", "0.9.0", "● running")
	if strings.Contains(v, "1.1.0") {
		t.Fatalf("a page not yet delivered is on screen:\n%s", v)
	}
	h.press("j") // the cursor on 0.9.0
	if r, _ := h.m.picker.selected(); r.Ref != "img:0.9.0" {
		t.Fatalf("cursor on %s, want img:0.9.0", r.Ref)
	}

	h.b.hold <- struct{}{}
	h.nextPage(waitImagePage(first.feed))
	v = h.view()
	if i, j, k := strings.Index(v, "1.2.0-rc1"), strings.Index(v, "1.1.0, latest"), strings.Index(v, "1.0.0 "); i < 0 || i > j || j > k {
		t.Fatalf("merged rows are not newest first:\n%s", v)
	}
	if r, _ := h.m.picker.selected(); r.Ref != "img:0.9.0" {
		t.Fatalf("the cursor moved to %s as rows arrived", r.Ref)
	}
	mustContain(t, v, "▸ 0.9.0", "loading… 4 images so far")

	h.press("esc")
	h.b.hold = nil
	h.press("enter") // untouched, the cursor stays on the newest so far
	h.deliverImages()
	if r, _ := h.m.picker.selected(); r.Ref != "img:1.2.0-rc1" {
		t.Fatalf("untouched cursor on %s, want the newest", r.Ref)
	}
}

func TestPickerStopsLoadingAtTheLastPage(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.b.hold = make(chan struct{})
	h.press("enter")
	first := h.nextPage(loadImagePages(context.Background(), h.b, svc, h.m.picker.listing))
	h.b.hold <- struct{}{}
	h.nextPage(waitImagePage(first.feed))
	last := h.nextPage(waitImagePage(first.feed))
	if !last.done || h.m.picker.loading {
		t.Fatal("the listing did not end")
	}
	if strings.Contains(h.view(), "loading…") {
		t.Fatalf("still says loading after the last page:\n%s", h.view())
	}
}

func TestPickerFiltersWhatHasArrivedWhileLoading(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.b.hold = make(chan struct{})
	h.press("enter")
	first := h.nextPage(loadImagePages(context.Background(), h.b, svc, h.m.picker.listing))
	h.press("/")
	h.press("0")
	h.press(".")
	h.press("9")
	v := h.view()
	mustContain(t, v, "0.9.0")
	if strings.Contains(v, "1.0.0") {
		t.Fatalf("filter 0.9 kept 1.0.0:\n%s", v)
	}
	h.b.hold <- struct{}{}
	h.nextPage(waitImagePage(first.feed))
	h.press("esc")
	mustContain(t, h.view(), "1.2.0-rc1", "1.1.0, latest", "0.9.0")
}

func TestPickerDropsPagesOfAListingItLeft(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.b.hold = make(chan struct{})
	h.press("enter")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stale := h.nextPage(loadImagePages(ctx, h.b, svc, h.m.picker.listing))
	h.press("esc")
	h.press("enter") // a new listing
	h.send(imagePageMsg{service: svc, load: stale.load, rows: h.b.images})
	if len(h.m.picker.rows) != 0 {
		t.Fatalf("a page of the old listing reached the new picker: %d rows", len(h.m.picker.rows))
	}
	cancel()
	// The feed may still hand over the end of the listing; then it closes.
	for i := 0; ; i++ {
		msg, ok := runQuick(waitImagePage(stale.feed))
		if !ok || i > 2 {
			t.Fatal("a cancelled listing's feed did not close")
		}
		if msg == nil {
			break
		}
	}
}

func TestPickerSaysWhyTheListingFailedAndKeepsWhatArrived(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.press("enter")
	h.send(imagePageMsg{service: svc, load: h.m.picker.listing, rows: h.b.images[:2]})
	h.send(imagePageMsg{service: svc, load: h.m.picker.listing, done: true, err: fmt.Errorf("describe images: context deadline exceeded")})
	mustContain(t, h.view(), "× list images: describe images", "1.2.0-rc1", "1.1.0, latest")
}

// Pages sorted apart merge newest first, images pushed in the same second
// by their tag as a version.
func TestPickerMergesPagesNewestFirstThenHighestTag(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	row := func(tag string, pushed time.Time) ImageRow {
		return ImageRow{Image: engine.Image{Tags: []string{tag}, Digest: "sha256:" + tag, Pushed: pushed}, Ref: tag}
	}
	s := newPicker(&env{}, "api", false, 1)
	s.addPage(imagePageMsg{rows: []ImageRow{row("1.2.0", at.Add(-time.Second)), row("1.10.0", at)}})
	s.addPage(imagePageMsg{rows: []ImageRow{row("1.9.0", at), row("2.0.0", at.Add(time.Second))}, done: true})
	if got := pickerTags(s); got != "2.0.0 1.10.0 1.9.0 1.2.0" {
		t.Fatalf("order %s, want 2.0.0 1.10.0 1.9.0 1.2.0", got)
	}
}

func pickerTags(s pickerScreen) string {
	var got []string
	for _, r := range s.rows {
		got = append(got, r.Tags[0])
	}
	return strings.Join(got, " ")
}

func TestProgramShowsFirstImagesWhileTheRegistryIsStillAnswering(t *testing.T) {
	b := newFakeBackend(t)
	b.hold = make(chan struct{})
	m := New(b, Options{Now: steppingNow(b.env.Clock.Now()), NoColor: true})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.Ascii)))
	waitText(t, tm, "no releases yet")
	tm.Send(keyPress("enter"))
	// Wait on digests: the renderer rewrites only the cells that change,
	// and no two of these share a cell at the same place.
	waitText(t, tm, "009988776655") // 0.9.0, on the first page
	b.hold <- struct{}{}
	waitText(t, tm, "9f2c4e1ab7d0") // 1.2.0-rc1, on the second
	tm.Send(keyPress("q"))
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(Model)
	if len(fm.picker.rows) != 4 || fm.picker.rows[0].Ref != "img:1.2.0-rc1" {
		t.Fatalf("%d rows, first %q; want 4 with img:1.2.0-rc1 first", len(fm.picker.rows), fm.picker.rows[0].Ref)
	}
}

// A service ordered by semantic version keeps that order across pages that
// arrive out of order, whatever the push times.
func TestPickerOrdersBySemverAcrossPagesWhenTheServiceDoes(t *testing.T) {
	s := newPicker(&env{}, "api", true, 1)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	row := func(tag string, age time.Duration) ImageRow {
		return ImageRow{Image: engine.Image{Tags: []string{tag}, Digest: "sha256:" + tag, Pushed: now.Add(-age)}, Ref: tag}
	}
	s.addPage(imagePageMsg{rows: []ImageRow{row("1.9.0", time.Minute), row("1.2.0", 0)}})
	s.addPage(imagePageMsg{rows: []ImageRow{row("1.10.0", time.Hour), row("2.0.0-rc1", 2*time.Hour)}, done: true})
	if got, want := pickerTags(s), "2.0.0-rc1 1.10.0 1.9.0 1.2.0"; got != want {
		t.Errorf("order %s, want %s", got, want)
	}
}

// A release ranks above its release candidates by version, even when the
// candidate was pushed later.
func TestPickerRanksAReleaseAboveItsReleaseCandidate(t *testing.T) {
	s := newPicker(&env{}, "api", true, 1)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.addPage(imagePageMsg{rows: []ImageRow{
		{Image: engine.Image{Tags: []string{"1.2.0-rc1"}, Digest: "sha256:b", Pushed: now}, Ref: "1.2.0-rc1"},
		{Image: engine.Image{Tags: []string{"1.2.0"}, Digest: "sha256:a", Pushed: now.Add(-time.Hour)}, Ref: "1.2.0"},
		{Image: engine.Image{Tags: []string{"1.1.0"}, Digest: "sha256:c", Pushed: now.Add(time.Hour)}, Ref: "1.1.0"},
	}, done: true})
	if got, want := pickerTags(s), "1.2.0 1.2.0-rc1 1.1.0"; got != want {
		t.Errorf("order %s, want %s", got, want)
	}
}
