package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrStaleEpoch is returned by Router.Apply when the table's epoch is older
// than the one the router already holds: another writer has taken over.
var ErrStaleEpoch = errors.New("stale epoch: another writer owns this router")

// MaxEpoch is the highest epoch a writer may claim. Epochs only grow, and
// a table at the very top of uint64 would leave no newer epoch for a
// rollback to fence it with: writers refuse to claim beyond this instead.
const MaxEpoch = uint64(1) << 62

// Backend is one instance as the router sees it: where to send requests and
// what share of them it gets.
type Backend struct {
	ID      string `json:"id"`
	Addr    string `json:"addr"`
	Version string `json:"version"`
	Weight  int    `json:"weight"`
}

// RouteTable is the router's whole routing state for one service. It is
// replaced atomically; Epoch fences out writers holding an older table, and
// Writer (a release id) tells two writers that claimed the same epoch apart:
// the router takes a table at its current epoch only from that epoch's writer.
type RouteTable struct {
	Epoch    uint64    `json:"epoch"`
	Writer   string    `json:"writer,omitempty"`
	Backends []Backend `json:"backends"`
}

// Weights sums the table's weights per version.
func (t RouteTable) Weights() map[string]int {
	w := make(map[string]int)
	for _, b := range t.Backends {
		w[b.Version] += b.Weight
	}
	return w
}

// Share returns the fraction (0..1) of traffic that goes to version.
func (t RouteTable) Share(version string) float64 {
	total := 0
	for _, b := range t.Backends {
		total += b.Weight
	}
	if total == 0 {
		return 0
	}
	return float64(t.Weights()[version]) / float64(total)
}

// Histogram is a cumulative latency histogram: Counts[i] is the number of
// responses with latency <= BoundsMs[i]; the last count is the +Inf bucket.
// Two snapshots can be subtracted to get the histogram of the interval.
type Histogram struct {
	BoundsMs []float64 `json:"bounds_ms"`
	Counts   []int64   `json:"counts"` // len(BoundsMs)+1
	SumMs    float64   `json:"sum_ms"` // sum of all latencies, for means and Prometheus _sum
}

// Totals are cumulative counters since the router started; subtract two
// snapshots to measure any interval exactly.
type Totals struct {
	Requests    int64     `json:"requests"`
	Class2xx    int64     `json:"2xx"`
	Class3xx    int64     `json:"3xx"`
	Class4xx    int64     `json:"4xx"`
	Class5xx    int64     `json:"5xx"`
	ProxyErrors int64     `json:"proxy_errors"` // connection refused/reset, timeouts: no response from the backend
	Retries     int64     `json:"retries"`      // requests replayed on another backend
	Latency     Histogram `json:"latency"`
}

// Window holds the figures of a sliding window (for example the last 10s).
type Window struct {
	Seconds     int     `json:"seconds"`
	Requests    int64   `json:"requests"`
	RPS         float64 `json:"rps"`
	Class2xx    int64   `json:"2xx"`
	Class3xx    int64   `json:"3xx"`
	Class4xx    int64   `json:"4xx"`
	Class5xx    int64   `json:"5xx"`
	ProxyErrors int64   `json:"proxy_errors"`
	ErrorRate   float64 `json:"error_rate"` // (5xx + proxy errors) / requests, 0 when idle
	P50Ms       float64 `json:"p50_ms"`
	P95Ms       float64 `json:"p95_ms"`
	P99Ms       float64 `json:"p99_ms"`
}

// BackendStats are the router's figures for one backend.
type BackendStats struct {
	ID       string            `json:"id"`
	Version  string            `json:"version"`
	Weight   int               `json:"weight"`
	InFlight int64             `json:"in_flight"`
	HeldOut  bool              `json:"held_out"` // temporarily skipped after a connection failure
	Totals   Totals            `json:"totals"`
	Windows  map[string]Window `json:"windows"` // keyed "10s", "1m"
}

// VersionStats are the router's figures summed over the backends of one
// version, including backends that have since left the table.
type VersionStats struct {
	Version  string            `json:"version"`
	InFlight int64             `json:"in_flight"`
	Totals   Totals            `json:"totals"`
	Windows  map[string]Window `json:"windows"`
}

// Stats is what the router reports about its traffic.
type Stats struct {
	Epoch uint64    `json:"epoch"`
	At    time.Time `json:"at"`
	// Started is when the router process started: cumulative totals of two
	// snapshots with different starts cannot be subtracted.
	Started  time.Time      `json:"started,omitzero"`
	Backends []BackendStats `json:"backends"`
	Versions []VersionStats `json:"versions"`
	// NoBackend counts requests answered 503 because no backend was available.
	NoBackend int64 `json:"no_backend"`
}

// Version returns the stats of one version, and whether the router has any.
func (s Stats) Version(v string) (VersionStats, bool) {
	for _, vs := range s.Versions {
		if vs.Version == v {
			return vs, true
		}
	}
	return VersionStats{}, false
}

// TableReader is a Router that can read its table alone, without the
// figures State gathers: the rollback's swap reads only what it needs.
type TableReader interface {
	Table(ctx context.Context) (RouteTable, error)
}

// readTable reads the router's table, alone where the router can.
func readTable(ctx context.Context, r Router) (RouteTable, error) {
	if tr, ok := r.(TableReader); ok {
		return tr.Table(ctx)
	}
	t, _, err := r.State(ctx)
	return t, err
}

// Router moves traffic. Apply replaces the whole table atomically and fails
// with ErrStaleEpoch if a newer writer exists; State reads back what is applied.
type Router interface {
	Apply(ctx context.Context, table RouteTable) error
	State(ctx context.Context) (RouteTable, Stats, error)
	// WaitDrained returns when the given backends have no requests in flight,
	// or with an error when ctx ends first.
	WaitDrained(ctx context.Context, ids []string) error
}

// ErrInvalidTable marks a route table a router refuses (duplicate ids,
// negative weights, bad addresses...). Nothing changes when it is returned.
var ErrInvalidTable = errors.New("invalid route table")

// MaxWeight bounds a single backend's weight, so sums cannot overflow.
const MaxWeight = 1_000_000

// ValidateTable is what every router accepts: backends with distinct,
// non-empty ids, weights in 0..MaxWeight, host:port addresses, some
// weight unless the table is empty, and an epoch a later writer can
// still exceed. The error names every backend that is wrong and why.
func ValidateTable(rt RouteTable) error {
	var problems []string
	if rt.Epoch > MaxEpoch {
		problems = append(problems, fmt.Sprintf("epoch %d is above the highest a writer may claim (%d)", rt.Epoch, MaxEpoch))
	}
	seen := make(map[string]int)
	total := 0
	for i, b := range rt.Backends {
		name := fmt.Sprintf("backend %d %q", i, b.ID)
		if b.ID == "" {
			name = fmt.Sprintf("backend %d", i)
			problems = append(problems, name+": empty id")
		} else if j, dup := seen[b.ID]; dup {
			problems = append(problems, fmt.Sprintf("%s: duplicate id (also backend %d)", name, j))
		} else {
			seen[b.ID] = i
		}
		switch {
		case b.Weight < 0:
			problems = append(problems, fmt.Sprintf("%s: negative weight %d", name, b.Weight))
		case b.Weight > MaxWeight:
			problems = append(problems, fmt.Sprintf("%s: weight %d is above the maximum %d", name, b.Weight, MaxWeight))
		default:
			total += b.Weight
		}
		if err := CheckAddr(b.Addr); err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", name, err))
		}
	}
	if len(rt.Backends) > 0 && total == 0 && len(problems) == 0 {
		problems = append(problems, fmt.Sprintf("weights sum to 0 with %d backends: no backend could take traffic (apply an empty table to route nothing)", len(rt.Backends)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidTable, strings.Join(problems, "; "))
	}
	return nil
}

// CheckAddr accepts host:port with a non-empty host and a port in 1..65535.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		reason := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			reason = ae.Err
		}
		return fmt.Errorf("address %q is not host:port (%s)", addr, reason)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("address %q: port %q is not a number", addr, port)
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("address %q: port %d is out of range 1-65535", addr, n)
	}
	return nil
}
