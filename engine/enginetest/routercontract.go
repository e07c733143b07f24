package enginetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

// NewRouterFunc makes a router with an empty table for one contract test.
// addrs are backend addresses the router may be given: ones that accept
// connections, for a router that checks its backends.
type NewRouterFunc func(t *testing.T) (r engine.Router, addrs []string)

// RouterContract runs the rules every engine.Router keeps against the
// router made by open: the built-in router, the in-memory one and any
// adapter of another load balancer pass it, so what the engine's tests
// prove on the fake holds for each.
func RouterContract(t *testing.T, open NewRouterFunc) {
	ctx := context.Background()
	table := func(epoch uint64, writer string, addrs []string, weights ...int) engine.RouteTable {
		t := engine.RouteTable{Epoch: epoch, Writer: writer}
		for i, w := range weights {
			t.Backends = append(t.Backends, engine.Backend{ID: string(rune('a' + i)), Addr: addrs[i%len(addrs)], Version: "1.0.0", Weight: w})
		}
		return t
	}
	same := func(t *testing.T, got, want engine.RouteTable) {
		t.Helper()
		if got.Epoch != want.Epoch || len(got.Backends) != len(want.Backends) {
			t.Fatalf("table %+v, want %+v", got, want)
		}
		w := map[string]int{}
		for _, b := range want.Backends {
			w[b.ID] = b.Weight
		}
		for _, b := range got.Backends {
			if wb, ok := w[b.ID]; !ok || wb != b.Weight {
				t.Fatalf("table %+v, want %+v", got, want)
			}
		}
	}
	state := func(t *testing.T, r engine.Router) engine.RouteTable {
		t.Helper()
		tab, stats, err := r.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Epoch != tab.Epoch {
			t.Errorf("stats epoch %d, table epoch %d", stats.Epoch, tab.Epoch)
		}
		return tab
	}

	t.Run("AppliesWholeTablesAndReadsThemBack", func(t *testing.T) {
		r, addrs := open(t)
		want := table(1, "w1", addrs, 2500, 7500)
		if err := r.Apply(ctx, want); err != nil {
			t.Fatal(err)
		}
		same(t, state(t, r), want)
		next := table(1, "w1", addrs, 10000, 0)
		if err := r.Apply(ctx, next); err != nil {
			t.Fatal(err)
		}
		same(t, state(t, r), next)
		empty := engine.RouteTable{Epoch: 1, Writer: "w1"}
		if err := r.Apply(ctx, empty); err != nil {
			t.Fatalf("an empty table: %v", err)
		}
		same(t, state(t, r), empty)
	})

	t.Run("FencesOlderEpochsAndOtherWritersOfTheSameEpoch", func(t *testing.T) {
		r, addrs := open(t)
		cur := table(5, "w5", addrs, 10000)
		if err := r.Apply(ctx, cur); err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(ctx, table(4, "w4", addrs, 5000, 5000)); !errors.Is(err, engine.ErrStaleEpoch) {
			t.Errorf("older epoch: %v, want ErrStaleEpoch", err)
		}
		if err := r.Apply(ctx, table(5, "other", addrs, 5000, 5000)); !errors.Is(err, engine.ErrStaleEpoch) {
			t.Errorf("same epoch, other writer: %v, want ErrStaleEpoch", err)
		}
		same(t, state(t, r), cur)
		newer := table(6, "w6", addrs, 5000, 5000)
		if err := r.Apply(ctx, newer); err != nil {
			t.Fatalf("newer epoch: %v", err)
		}
		same(t, state(t, r), newer)
	})

	t.Run("RefusesInvalidTablesChangingNothing", func(t *testing.T) {
		r, addrs := open(t)
		cur := table(1, "w", addrs, 10000)
		if err := r.Apply(ctx, cur); err != nil {
			t.Fatal(err)
		}
		bad := map[string]engine.RouteTable{
			"duplicate id":  {Epoch: 1, Writer: "w", Backends: []engine.Backend{{ID: "a", Addr: addrs[0], Weight: 1}, {ID: "a", Addr: addrs[0], Weight: 1}}},
			"negative":      {Epoch: 1, Writer: "w", Backends: []engine.Backend{{ID: "a", Addr: addrs[0], Weight: -1}, {ID: "b", Addr: addrs[0], Weight: 5}}},
			"no address":    {Epoch: 1, Writer: "w", Backends: []engine.Backend{{ID: "a", Addr: "", Weight: 1}}},
			"bad port":      {Epoch: 1, Writer: "w", Backends: []engine.Backend{{ID: "a", Addr: "127.0.0.1:0", Weight: 1}}},
			"all zero":      {Epoch: 1, Writer: "w", Backends: []engine.Backend{{ID: "a", Addr: addrs[0], Weight: 0}}},
			"empty id":      {Epoch: 1, Writer: "w", Backends: []engine.Backend{{ID: "", Addr: addrs[0], Weight: 1}}},
			"too heavy":     {Epoch: 1, Writer: "w", Backends: []engine.Backend{{ID: "a", Addr: addrs[0], Weight: engine.MaxWeight + 1}}},
			"last epoch +1": {Epoch: engine.MaxEpoch + 1, Writer: "w", Backends: []engine.Backend{{ID: "a", Addr: addrs[0], Weight: 1}}},
		}
		for name, tab := range bad {
			err := r.Apply(ctx, tab)
			if err == nil || errors.Is(err, engine.ErrStaleEpoch) {
				t.Errorf("%s: %v, want a refusal of the table", name, err)
			}
		}
		same(t, state(t, r), cur)
	})

	t.Run("WaitDrainedReturnsAtOnceForIdleBackendsAndObeysItsContext", func(t *testing.T) {
		r, addrs := open(t)
		if err := r.Apply(ctx, table(1, "w", addrs, 5000, 5000)); err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := r.WaitDrained(c, []string{"a", "b", "gone"}); err != nil {
			t.Errorf("idle backends: %v", err)
		}
	})
}
