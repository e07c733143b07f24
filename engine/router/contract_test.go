package router

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/enginetest"
)

// The built-in router, driven through its admin client, keeps every rule
// the engine relies on; the in-memory router of engine/enginetest passes
// the same contract.
func TestRouterContract(t *testing.T) {
	enginetest.RouterContract(t, func(t *testing.T) (engine.Router, []string) {
		r := startRouter(t, Options{})
		return r.client, []string{"127.0.0.1:8081", "127.0.0.1:8082"}
	})
}

// A drain whose deadline passes while the router is being read reports
// what was still in flight, as one that passes between reads does.
func TestWaitDrainedDeadlineDuringAReadSaysStillBusy(t *testing.T) {
	r := startRouter(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := r.client.WaitDrained(ctx, []string{"a", "b"})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "still busy: a, b") {
		t.Errorf("WaitDrained past its deadline: %v, want a still-busy error naming a, b", err)
	}
}

// A table the router cannot save is taken back: what serves is what a
// restart would serve again, and the writer hears it failed.
func TestATableTheRouterCannotSaveIsTakenBack(t *testing.T) {
	dir := t.TempDir()
	r := startRouter(t, Options{StatePath: filepath.Join(dir, "state.json")})
	ctx := context.Background()
	first := engine.RouteTable{Epoch: 1, Writer: "w", Backends: []engine.Backend{{ID: "a", Addr: "127.0.0.1:8081", Version: "1.0.0", Weight: 1}}}
	if err := r.client.Apply(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil { // the next save has nowhere to go
		t.Fatal(err)
	}
	next := first
	next.Epoch, next.Backends = 2, []engine.Backend{{ID: "b", Addr: "127.0.0.1:8082", Version: "1.1.0", Weight: 1}}
	if err := r.client.Apply(ctx, next); err == nil {
		t.Fatal("a table the router could not save was applied")
	}
	got, err := r.client.Table(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch != 1 || len(got.Backends) != 1 || got.Backends[0].ID != "a" {
		t.Errorf("after a failed save the router serves %+v, want the first table back", got)
	}
}
