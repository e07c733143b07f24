package router

import (
	"sync"
	"sync/atomic"
)

// maxSequence bounds the precomputed smooth sequence. Tables whose reduced
// weights sum to more fall back to live smooth weighted round robin under a
// small per-table mutex.
const maxSequence = 1 << 14

// balancer picks backends by smooth weighted round robin (nginx's algorithm:
// every pick adds each weight to its current value, takes the largest and
// subtracts the total). Since a table never changes, the whole cycle is
// computed once (weights reduced by their gcd) and requests walk it with an
// atomic counter: lock-free, and as smooth as nginx — no bursts to one backend.
type balancer struct {
	members []*entry
	seq     []uint32      // indexes into members, one cycle; nil means live mode
	next    atomic.Uint64 // position in seq

	mu      sync.Mutex // live mode only
	weights []int
	current []int
}

func newBalancer(members []*entry) *balancer {
	b := &balancer{members: members}
	if len(members) == 0 {
		return b
	}
	weights := make([]int, len(members))
	g := 0
	for i, e := range members {
		weights[i] = e.backend.Weight
		g = gcd(g, weights[i])
	}
	sum := 0
	for i := range weights {
		weights[i] /= g
		sum += weights[i]
	}
	if sum <= maxSequence {
		b.seq = smoothSequence(weights, sum)
		return b
	}
	b.weights = weights
	b.current = make([]int, len(weights))
	return b
}

// smoothSequence runs one full cycle (sum picks) of smooth weighted round robin.
func smoothSequence(weights []int, sum int) []uint32 {
	seq := make([]uint32, 0, sum)
	current := make([]int, len(weights))
	for range sum {
		best := 0
		for i, w := range weights {
			current[i] += w
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= sum
		seq = append(seq, uint32(best))
	}
	return seq
}

// pick returns the next backend in smooth order for which usable is true, or
// nil when none is.
func (b *balancer) pick(usable func(*entry) bool) *entry {
	if b == nil || len(b.members) == 0 {
		return nil
	}
	if b.seq == nil {
		return b.pickLive(usable)
	}
	n := uint64(len(b.seq))
	start := b.next.Add(1) - 1
	for i := range n {
		if e := b.members[b.seq[(start+i)%n]]; usable(e) {
			return e
		}
	}
	return nil
}

// pickLive is nginx's smooth weighted round robin over the usable members,
// for tables too large to precompute.
func (b *balancer) pickLive(usable func(*entry) bool) *entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	best, total := -1, 0
	for i, e := range b.members {
		if !usable(e) {
			continue
		}
		b.current[i] += b.weights[i]
		total += b.weights[i]
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b.current[best] -= total
	return b.members[best]
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
