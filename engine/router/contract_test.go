package router

import (
	"context"
	"errors"
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
