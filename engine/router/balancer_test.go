package router

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/cutover/cutover/engine"
)

func entriesWithWeights(weights ...int) []*entry {
	es := make([]*entry, len(weights))
	for i, w := range weights {
		es[i] = &entry{backend: engine.Backend{ID: string(rune('a' + i)), Weight: w}, up: &upstream{}}
	}
	return es
}

func picks(b *balancer, n int) string {
	out := make([]byte, 0, n)
	for range n {
		out = append(out, b.pick(func(*entry) bool { return true }).backend.ID[0])
	}
	return string(out)
}

func TestEqualWeightsStrictlyAlternate(t *testing.T) {
	got := picks(newBalancer(entriesWithWeights(1, 1)), 10)
	if got != "abababababa"[:10] {
		t.Fatalf("1:1 picks = %q, want strict alternation", got)
	}
	got = picks(newBalancer(entriesWithWeights(50, 50)), 6)
	if got != "ababab" {
		t.Fatalf("50:50 picks = %q, want strict alternation (weights reduced by gcd)", got)
	}
}

func TestSmoothOrderMatchesNginx(t *testing.T) {
	// nginx's documented example: weights 5,1,1 give a a b a c a a.
	if got := picks(newBalancer(entriesWithWeights(5, 1, 1)), 7); got != "aabacaa" {
		t.Fatalf("5:1:1 picks = %q, want nginx's smooth order aabacaa", got)
	}
}

func TestLightBackendPicksAreSpreadNotBursty(t *testing.T) {
	got := picks(newBalancer(entriesWithWeights(5, 95)), 2000)
	last, lights := -1, 0
	for i := range got {
		if got[i] != 'a' {
			continue
		}
		lights++
		if i > 0 && got[i-1] == 'a' {
			t.Fatalf("two light picks in a row at %d", i)
		}
		if last >= 0 && i-last != 20 {
			t.Fatalf("light picks %d apart at %d, want every 20th", i-last, i)
		}
		last = i
	}
	if lights != 100 {
		t.Fatalf("light backend picked %d of 2000, want 100", lights)
	}
}

func TestHugeWeightSumsUseLiveSmoothRoundRobin(t *testing.T) {
	b := newBalancer(entriesWithWeights(999_983, 999_979)) // coprime: no gcd reduction
	if b.seq != nil {
		t.Fatal("expected the live mode for a sum beyond maxSequence")
	}
	if got := picks(b, 6); got != "ababab" {
		t.Fatalf("live picks = %q, want alternation", got)
	}
}

func TestHeldOutBackendIsSkippedUnlessAllAre(t *testing.T) {
	es := entriesWithWeights(1, 1)
	b := newBalancer(es)
	skipA := func(e *entry) bool { return e != es[0] }
	for range 5 {
		if e := b.pick(skipA); e != es[1] {
			t.Fatalf("picked %s, want b while a is unusable", e.backend.ID)
		}
	}
	if e := b.pick(func(*entry) bool { return false }); e != nil {
		t.Fatalf("picked %s with nothing usable", e.backend.ID)
	}
}

func TestWeightsSplitTrafficWithinOnePercent(t *testing.T) {
	light, heavy := startBackend(t, "light", "v2"), startBackend(t, "heavy", "v1")
	r := startRouter(t, Options{})
	r.apply(t, 1, light.backend(5), heavy.backend(95))
	c := newTestClient(8)
	const total = 10000
	counts := make(chan map[string]int, 4)
	for w := range 4 {
		go func() {
			m := map[string]int{}
			for range total / 4 {
				res, err := c.Get(r.url + "/")
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					break
				}
				io.Copy(io.Discard, res.Body) // so the connection is reused
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("status %d", res.StatusCode)
				}
				m[res.Header.Get("X-Backend")]++
			}
			counts <- m
		}()
	}
	got := map[string]int{}
	for range 4 {
		for k, v := range <-counts {
			got[k] += v
		}
	}
	share := float64(got["light"]) / total
	if share < 0.04 || share > 0.06 {
		t.Fatalf("light backend got %d of %d (%.2f%%), want 5%% ± 1%%", got["light"], total, share*100)
	}
	if got["light"]+got["heavy"] != total {
		t.Fatalf("served %v, want %d in all", got, total)
	}
	if err := r.client.WaitDrained(context.Background(), []string{"light", "heavy"}); err != nil {
		t.Fatal(err)
	}
	st, err := r.client.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := st.Version("v2")
	if v2.Totals.Requests != int64(got["light"]) {
		t.Fatalf("stats count %d requests for v2, clients saw %d", v2.Totals.Requests, got["light"])
	}
}
