package enginetest

import (
	"strings"
	"sync"
)

// Trace records calls across the doubles in the order they happened, as
// "journal:applying", "router:apply", "platform:launch 1.1.0" and so on.
// Share one between a Platform, a Router and a Journal to check ordering.
type Trace struct {
	mu    sync.Mutex
	lines []string
}

// Add records one line; a nil Trace records nothing.
func (t *Trace) Add(line string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
}

// Lines returns a copy of what was recorded.
func (t *Trace) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.lines...)
}

// Mutations returns the lines for calls that change something
// (router:apply, platform:launch, platform:stop).
func (t *Trace) Mutations() []string {
	var out []string
	for _, l := range t.Lines() {
		if IsMutation(l) {
			out = append(out, l)
		}
	}
	return out
}

// IsMutation says whether a trace line is a platform or router mutation.
func IsMutation(line string) bool {
	return strings.HasPrefix(line, "router:apply") || strings.HasPrefix(line, "platform:launch") || strings.HasPrefix(line, "platform:stop")
}

// Len is the number of recorded lines.
func (t *Trace) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.lines)
}
