//go:build unix

package tui

import (
	"context"
	"io"
	"syscall"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
)

// idleFor is how long each program sits idle: long enough for a few home
// refreshes (homeRefreshEvery), short enough to run often.
const idleFor = 6 * time.Second

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPercent runs run for idleFor and returns the CPU time it used, as a
// percentage of the wall time.
func cpuPercent(tb testing.TB, run func(ctx context.Context)) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), idleFor)
	defer cancel()
	start, wall := cpuTime(tb), time.Now()
	run(ctx)
	return 100 * float64(cpuTime(tb)-start) / float64(time.Since(wall))
}

// staticModel draws one fixed frame and does nothing else: what a Bubble
// Tea program costs at rest.
type staticModel struct{ frame string }

func (s staticModel) Init() tea.Cmd                       { return nil }
func (s staticModel) Update(tea.Msg) (tea.Model, tea.Cmd) { return s, nil }
func (s staticModel) View() tea.View {
	v := tea.NewView(s.frame)
	v.AltScreen = true
	return v
}

// BenchmarkIdleHomeCPU runs the real console (Run, over the fake backend)
// idle on the home screen for idleFor and reports the CPU it uses, with two
// baselines run beside it in the same process: a static Bubble Tea program
// at Bubble Tea's default frame rate (what any program costs at rest) and
// at the console's. console-cpu% is the figure to keep under 1%;
// x-baseline is it over the first baseline; own-cpu% is the console's work
// beyond the second (refreshes, frames).
//
//	go test -run '^$' -bench IdleHomeCPU -benchtime 1x ./tui/
func BenchmarkIdleHomeCPU(b *testing.B) {
	const w, h = 120, 40
	input, hang := io.Pipe() // a terminal nobody types into
	defer hang.Close()
	for b.Loop() {
		fb := newFakeBackend(b)
		frame := Frame(New(fb, Options{Width: w, Height: h}))
		static := func(fps int) float64 {
			return cpuPercent(b, func(ctx context.Context) {
				_, _ = tea.NewProgram(staticModel{frame}, tea.WithContext(ctx), tea.WithInput(input),
					tea.WithOutput(io.Discard), tea.WithWindowSize(w, h), tea.WithFPS(fps)).Run()
			})
		}
		base := static(0) // 0: Bubble Tea's default
		same := static(frameRate)
		console := cpuPercent(b, func(ctx context.Context) {
			if err := Run(ctx, fb, Options{Input: input, Output: io.Discard, Width: w, Height: h}); err != nil {
				b.Fatal(err)
			}
		})
		b.ReportMetric(base, "baseline-cpu%")
		b.ReportMetric(console, "console-cpu%")
		b.ReportMetric(console/base, "x-baseline")
		b.ReportMetric(console-same, "own-cpu%")
	}
}
