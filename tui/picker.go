package tui

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/spinner"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"github.com/cutover/cutover/engine"
)

// pickerScreen lists a service's candidate images, newest first, with a
// / filter over tags and digests. Images arrive page by page (a large
// registry takes several round trips): the first page shows at once and
// the rest merge in while the cursor stays on the same image.
type pickerScreen struct {
	env     *env
	service string
	// bySemver orders rows by their tag as a version (the service's
	// source.semver), not by push time.
	bySemver bool
	rows     []ImageRow
	hay      []string // lower-cased tags, digest and ref of each row, for the filter
	seen     map[string]bool
	loaded   bool // something to show: a page or the end of the listing
	loading  bool // more pages may come
	listing  int  // which listing this picker shows (stale pages are dropped)
	stop     context.CancelFunc
	spin     spinner.Model
	err      string
	cursor   int
	moved    bool // the operator moved the cursor: it stays on their image
	filter   textinput.Model
	typing   bool // the filter has focus
	w, h     int
}

// loadingSpinner uses block glyphs, which render everywhere the console does.
var loadingSpinner = spinner.Spinner{Frames: []string{"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█", "▇", "▆", "▅", "▄", "▃", "▂"}, FPS: time.Second / 10}

// newPicker is the picker of listing number listing of service's images,
// ordered by version when bySemver, else newest first.
func newPicker(e *env, service string, bySemver bool, listing int) pickerScreen {
	ti := textinput.New()
	ti.Prompt = "/"
	ti.Placeholder = "tag or digest"
	return pickerScreen{env: e, service: service, bySemver: bySemver, filter: ti, listing: listing, loading: true,
		seen: map[string]bool{}, spin: spinner.New(spinner.WithSpinner(loadingSpinner), spinner.WithStyle(e.styles.Running))}
}

// load starts the listing, which close (or leaving the console) cancels.
func (s *pickerScreen) load() tea.Cmd {
	ctx, stop := context.WithCancel(s.env.ctx)
	s.stop = stop
	return tea.Batch(loadImagePages(ctx, s.env.b, s.service, s.listing), s.spin.Tick)
}

// close stops a listing still in progress: the operator left the picker.
func (s *pickerScreen) close() {
	if s.stop != nil {
		s.stop()
	}
	s.loading = false
}

// addPage merges one page of the listing, newest first; the last message
// ends the loading. Once the operator has moved the cursor it stays on
// their image as rows arrive above it; until then it stays on the top
// row, the newest image so far (a registry's first page is not the newest).
func (s *pickerScreen) addPage(msg imagePageMsg) {
	cur, had := s.selected()
	if len(msg.rows) > 0 {
		page := make([]ImageRow, 0, len(msg.rows))
		for _, r := range msg.rows {
			k := r.Ref + "\x00" + r.Digest
			if !s.seen[k] {
				s.seen[k] = true
				page = append(page, r)
			}
		}
		first := func(a, b ImageRow) bool { return engine.CompareImages(a.Image, b.Image, s.bySemver) < 0 }
		sort.SliceStable(page, func(i, j int) bool { return first(page[i], page[j]) })
		s.rows = mergeBy(s.rows, page, first)
		s.hay = s.hay[:0]
		for _, r := range s.rows {
			s.hay = append(s.hay, strings.ToLower(strings.Join(r.Tags, " ")+" "+r.Digest+" "+r.Ref))
		}
	}
	s.loaded = true
	if msg.done {
		s.loading = false
		if msg.err != nil {
			s.err = advise("list images", msg.err)
		}
	}
	if had && s.moved {
		for i, r := range s.visible() {
			if r.Ref == cur.Ref && r.Digest == cur.Digest {
				s.cursor = i
				break
			}
		}
	}
}

// mergeBy merges two lists sorted by first.
func mergeBy(a, b []ImageRow, first func(a, b ImageRow) bool) []ImageRow {
	out := make([]ImageRow, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if first(b[j], a[i]) {
			out = append(out, b[j])
			j++
		} else {
			out = append(out, a[i])
			i++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// SetSize sets the area the screen draws in.
func (s *pickerScreen) SetSize(w, h int) {
	s.w, s.h = w, h
	s.filter.SetWidth(max(10, w-4))
}

// visible is the rows that match the filter, in registry order (newest first).
func (s pickerScreen) visible() []ImageRow {
	q := strings.ToLower(strings.TrimSpace(s.filter.Value()))
	if q == "" {
		return s.rows
	}
	var out []ImageRow
	for i, r := range s.rows {
		if strings.Contains(s.hay[i], q) {
			out = append(out, r)
		}
	}
	return out
}

// selected is the image under the cursor.
func (s pickerScreen) selected() (ImageRow, bool) {
	v := s.visible()
	if s.cursor < 0 || s.cursor >= len(v) {
		return ImageRow{}, false
	}
	return v[s.cursor], true
}

// startFilter gives the filter focus.
func (s *pickerScreen) startFilter() tea.Cmd {
	s.typing = true
	return s.filter.Focus()
}

// Update takes the listing's pages, turns the spinner while they come,
// and handles the filter while it has focus, and the cursor.
func (s pickerScreen) Update(msg tea.Msg) (pickerScreen, tea.Cmd) {
	switch msg := msg.(type) {
	case imagePageMsg:
		if msg.load != s.listing || msg.service != s.service {
			return s, nil // a listing the operator has left (and cancelled)
		}
		s.addPage(msg)
		if msg.done || msg.feed == nil {
			return s, nil
		}
		return s, waitImagePage(msg.feed)
	case spinner.TickMsg:
		if !s.loading {
			return s, nil
		}
		var cmd tea.Cmd
		s.spin, cmd = s.spin.Update(msg)
		return s, cmd
	}
	if k, ok := msg.(tea.KeyPressMsg); ok && s.typing {
		switch k.String() {
		case "enter", "esc":
			s.typing = false
			s.filter.Blur()
			if k.String() == "esc" {
				s.filter.SetValue("")
			}
			s.cursor = 0
			return s, nil
		case "up", "down":
			// fall through to the cursor below while typing
		default:
			var cmd tea.Cmd
			s.filter, cmd = s.filter.Update(msg)
			s.cursor = 0
			return s, cmd
		}
	}
	if k, ok := msg.(tea.KeyPressMsg); ok {
		switch {
		case key.Matches(k, s.env.keys.Filter):
			return s, s.startFilter()
		case key.Matches(k, s.env.keys.Up) || k.String() == "up":
			s.cursor = max(0, s.cursor-1)
			s.moved = true
		case key.Matches(k, s.env.keys.Down) || k.String() == "down":
			s.cursor = max(0, min(len(s.visible())-1, s.cursor+1))
			s.moved = true
		}
	}
	return s, nil
}

// intent is what a key asks beyond the picker: enter takes the image to
// the strategy screen.
func (s pickerScreen) intent(k tea.KeyPressMsg) intent {
	if img, ok := s.selected(); ok && key.Matches(k, s.env.keys.Choose) {
		return openStrategy{s.service, img}
	}
	return nil
}

// enable turns on the keys that work on the listing now.
func (s *pickerScreen) enable(k *KeyMap) {
	k.Up.SetEnabled(true)
	k.Down.SetEnabled(true)
	k.Filter.SetEnabled(s.loaded)
	_, ok := s.selected()
	k.Choose.SetEnabled(ok)
}

// subject is the service whose images are listed.
func (s *pickerScreen) subject() string { return s.service }

// editing says the filter has focus: keys go to it first.
func (s *pickerScreen) editing() bool { return s.typing }

// back stops the listing: the operator leaves the picker.
func (s *pickerScreen) back() bool {
	s.close()
	return false
}

func (s *pickerScreen) update(msg tea.Msg) (cmd tea.Cmd) {
	*s, cmd = s.Update(msg)
	return cmd
}

// View draws the table of images.
func (s pickerScreen) View() string {
	st := s.env.styles
	w := max(40, s.w)
	var b []string
	order := " · choose an image (newest first)"
	if s.bySemver {
		order = " · choose an image (highest version first)"
	}
	b = append(b, st.Title.Render(s.service)+st.Subtle.Render(order))
	if s.loading {
		b[0] += "  " + s.spin.View() + st.Subtle.Render(fmt.Sprintf(" loading… %d images so far", len(s.rows)))
	}
	if s.typing || s.filter.Value() != "" {
		b = append(b, s.filter.View())
	}
	if s.err != "" {
		b = append(b, cut(st.Error.Render("× "+s.err), w))
		if len(s.rows) == 0 {
			return strings.Join(b, "\n")
		}
	}
	if !s.loaded {
		b = append(b, st.Subtle.Render("reading the registry…"))
		return strings.Join(b, "\n")
	}
	rows := s.visible()
	if len(rows) == 0 {
		switch {
		case len(s.rows) == 0 && s.loading:
			b = append(b, st.Subtle.Render("reading the registry…"))
		case len(s.rows) == 0:
			b = append(b, "No images found for "+s.service+". Build or push one, then come back (esc).")
		default:
			b = append(b, st.Subtle.Render("no image matches the filter — esc clears it"))
		}
		return strings.Join(b, "\n")
	}
	tagW := max(10, min(40, w-2-13-9-10-16-4))
	head := "  " + fit("TAG", tagW) + " " + fit("DIGEST", 12) + " " + fit("PUSHED", 9) + " " + fit("SIZE", 9) + " " + "MARK"
	b = append(b, st.Heading.Render(cut(head, w)))
	room := max(1, s.h-len(b))
	start := max(0, min(s.cursor-room/2, len(rows)-room))
	now := s.env.now()
	for i := start; i < len(rows) && i < start+room; i++ {
		r := rows[i]
		tag := strings.Join(r.Tags, ", ")
		if tag == "" {
			tag = "<untagged>"
		}
		mark := ""
		switch {
		case r.Running:
			mark = st.Healthy.Render("● running")
		case r.RanAt:
			mark = st.Subtle.Render("↺ ran before")
		}
		if r.Scan != "" {
			mark += st.Subtle.Render(" " + r.Scan)
		}
		pre := "  "
		if i == s.cursor {
			pre = "▸ "
		}
		line := pre + fit(tag, tagW) + " " + st.Subtle.Render(fit(engine.ShortDigest(r.Digest), 12)) + " " + fit(engine.Ago(now, r.Pushed), 9) + " " +
			fit(engine.HumanBytes(r.Size), 9) + " " + mark
		if i == s.cursor {
			line = st.Selected.Render(cut(line, w))
		}
		b = append(b, cut(line, w))
	}
	if len(rows) > room && !s.loading {
		b[0] += st.Subtle.Render(fmt.Sprintf("  %d/%d", s.cursor+1, len(rows)))
	}
	return strings.Join(b, "\n")
}

// imagePageMsg is one page of a service's images from one listing
// (load); the last message of a listing has done set, and err if it
// failed. feed delivers the listing's next message.
type imagePageMsg struct {
	service string
	load    int
	rows    []ImageRow
	done    bool
	err     error
	feed    <-chan imagePageMsg
}

// loadImagePages lists a service's images page by page: a goroutine
// relays each page the Backend delivers into a feed, the command returns
// the first message, and the picker re-arms waitImagePage once per message
// until the last. Cancelling ctx ends the listing and closes the feed.
func loadImagePages(ctx context.Context, b Backend, service string, load int) tea.Cmd {
	return func() tea.Msg {
		feed := make(chan imagePageMsg, 4)
		send := func(m imagePageMsg) {
			m.service, m.load, m.feed = service, load, feed
			select {
			case feed <- m:
			case <-ctx.Done():
			}
		}
		go func() {
			defer close(feed)
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						err = panicError(p)
					}
				}()
				return b.ImagePages(ctx, service, func(rows []ImageRow) {
					send(imagePageMsg{rows: append([]ImageRow(nil), rows...)})
				})
			}()
			send(imagePageMsg{done: true, err: err})
		}()
		return waitImagePage(feed)()
	}
}

// waitImagePage waits for a listing's next message; nil once the feed is
// closed (the listing was cancelled).
func waitImagePage(feed <-chan imagePageMsg) tea.Cmd {
	return func() tea.Msg {
		m, ok := <-feed
		if !ok {
			return nil
		}
		return m
	}
}
