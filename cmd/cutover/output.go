package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/cutover/cutover/engine"
)

// eventWriter prints release events, one line each: readable text, or
// NDJSON for machines (--output json).
type eventWriter struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

func newEventWriter(w io.Writer, format string) (*eventWriter, error) {
	if err := checkOutput(format); err != nil {
		return nil, err
	}
	return &eventWriter{w: w, json: format == "json"}, nil
}

// checkOutput validates an --output flag.
func checkOutput(format string) error {
	if format != "text" && format != "json" {
		return withCode(exitUsage, fmt.Errorf("--output %q: want text or json", format))
	}
	return nil
}

func (o *eventWriter) write(ev engine.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		b, err := json.Marshal(ev)
		if err == nil {
			fmt.Fprintf(o.w, "%s\n", b)
		}
		return
	}
	fmt.Fprintln(o.w, eventLine(ev))
}

// eventLine renders an event for people: time, step, what happened.
func eventLine(ev engine.Event) string {
	var b strings.Builder
	b.WriteString(ev.At.Local().Format("15:04:05.000"))
	if ev.Step >= 0 {
		fmt.Fprintf(&b, "  step %-2d", ev.Step+1)
	} else {
		b.WriteString("         ")
	}
	// Multi-line messages (the plan) continue under the message column.
	msg := strings.ReplaceAll(strings.TrimRight(ev.Message, "\n"), "\n", "\n"+strings.Repeat(" ", 36))
	fmt.Fprintf(&b, " %-13s %s", ev.Kind, msg)
	if ev.Error != "" && !strings.Contains(ev.Message, ev.Error) {
		b.WriteString(": " + ev.Error)
	}
	return b.String()
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
