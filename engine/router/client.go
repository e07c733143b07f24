package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/cutover/cutover/engine"
)

// ErrUnauthorized is returned when the router refuses the client's token.
var ErrUnauthorized = errors.New("router refused the admin token")

// DefaultPollInterval is how often WaitDrained reads the router's stats.
const DefaultPollInterval = 25 * time.Millisecond

// APIError is an error answer of the admin API. It unwraps to
// engine.ErrStaleEpoch (409), ErrInvalidTable (400) or ErrUnauthorized (401).
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("router answered %d: %s", e.StatusCode, e.Message)
}

// Unwrap maps the status to the sentinel callers test with errors.Is.
func (e *APIError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusConflict:
		return engine.ErrStaleEpoch
	case http.StatusBadRequest:
		return ErrInvalidTable
	case http.StatusUnauthorized:
		return ErrUnauthorized
	}
	return nil
}

// Client talks to a router's admin API. It implements engine.Router.
type Client struct {
	base  string
	token string
	http  *http.Client
	// PollInterval is how often WaitDrained polls (default 25ms).
	PollInterval time.Duration
}

var _ engine.Router = (*Client)(nil)

// Dial makes a client for the admin address addr ("unix:/path/to.sock" or
// "127.0.0.1:port"); token is sent as a bearer token when not empty. It does
// not connect: the first call does.
func Dial(addr, token string) (*Client, error) {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
	}
	base := ""
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return nil, fmt.Errorf("dial router: address %q has no socket path", addr)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
		base = "http://router"
	} else {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("dial router: address %q: want unix:/path or host:port: %w", addr, err)
		}
		tr.DialContext = dialer.DialContext
		base = "http://" + addr
	}
	return &Client{base: base, token: token, http: &http.Client{Transport: tr}, PollInterval: DefaultPollInterval}, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// Apply replaces the router's whole table. A table older than the router's
// epoch fails with engine.ErrStaleEpoch; a table the router finds invalid
// fails with ErrInvalidTable and the router's reason.
func (c *Client) Apply(ctx context.Context, rt engine.RouteTable) error {
	if rt.Backends == nil {
		rt.Backends = []engine.Backend{}
	}
	err := c.do(ctx, http.MethodPut, "/v1/table", rt, nil)
	var apiErr *APIError
	if rt.Writer != "" && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusBadRequest && strings.Contains(apiErr.Message, `"writer"`) {
		// A router from before tables named their writer: it fences by
		// epoch alone. Restart it with this binary to fence equal epochs.
		rt.Writer = ""
		err = c.do(ctx, http.MethodPut, "/v1/table", rt, nil)
	}
	if err != nil {
		return fmt.Errorf("apply route table (epoch %d): %w", rt.Epoch, err)
	}
	return nil
}

// Table reads the applied table.
func (c *Client) Table(ctx context.Context) (engine.RouteTable, error) {
	var rt engine.RouteTable
	if err := c.do(ctx, http.MethodGet, "/v1/table", nil, &rt); err != nil {
		return engine.RouteTable{}, fmt.Errorf("read route table: %w", err)
	}
	return rt, nil
}

// Stats reads the router's figures.
func (c *Client) Stats(ctx context.Context) (engine.Stats, error) {
	var st engine.Stats
	if err := c.do(ctx, http.MethodGet, "/v1/stats", nil, &st); err != nil {
		return engine.Stats{}, fmt.Errorf("read router stats: %w", err)
	}
	return st, nil
}

// State reads the applied table and the stats taken at the same moment.
func (c *Client) State(ctx context.Context) (engine.RouteTable, engine.Stats, error) {
	var sr StateResponse
	if err := c.do(ctx, http.MethodGet, "/v1/state", nil, &sr); err != nil {
		return engine.RouteTable{}, engine.Stats{}, fmt.Errorf("read router state: %w", err)
	}
	return sr.Table, sr.Stats, nil
}

// Health checks that the router answers.
func (c *Client) Health(ctx context.Context) (HealthResponse, error) {
	var h HealthResponse
	if err := c.do(ctx, http.MethodGet, "/v1/health", nil, &h); err != nil {
		return HealthResponse{}, fmt.Errorf("router health: %w", err)
	}
	return h, nil
}

// Metrics reads the Prometheus text the router exposes on /metrics.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	var buf bytes.Buffer
	if err := c.do(ctx, http.MethodGet, "/metrics", nil, &buf); err != nil {
		return "", fmt.Errorf("read router metrics: %w", err)
	}
	return buf.String(), nil
}

// WaitDrained returns once none of the backends ids has a request in flight
// (a backend the router no longer reports has none), polling the stats.
func (c *Client) WaitDrained(ctx context.Context, ids []string) error {
	interval := c.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	busy := ids // until the first answer, all of them
	for {
		st, err := c.Stats(ctx)
		if err != nil {
			if ctx.Err() != nil {
				// The deadline passed during the read: say what was still
				// in flight at the last look, as when it passes between reads.
				return fmt.Errorf("wait for drain: still busy: %s: %w", strings.Join(busy, ", "), ctx.Err())
			}
			return fmt.Errorf("wait for %s to drain: %w", strings.Join(ids, ", "), err)
		}
		busy = nil
		for _, b := range st.Backends {
			if want[b.ID] && b.InFlight > 0 {
				busy = append(busy, fmt.Sprintf("%s (%d in flight)", b.ID, b.InFlight))
			}
		}
		if len(busy) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for drain: still busy: %s: %w", strings.Join(busy, ", "), ctx.Err())
		case <-tick.C:
		}
	}
}

// requestTimeout bounds one admin request, state file fsync included.
const requestTimeout = 15 * time.Second

// do sends one admin request. in is encoded as JSON; out is decoded from
// JSON, or filled with the raw body when it is a *bytes.Buffer.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	// A router that stops answering (stopped, stuck on a disk) must not
	// hang the engine: it would take no commands and renew no lease.
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		var er errorResponse
		if json.Unmarshal(data, &er) != nil || er.Error == "" {
			er.Error = strings.TrimSpace(string(data))
		}
		return &APIError{StatusCode: res.StatusCode, Message: er.Error}
	}
	switch out := out.(type) {
	case nil:
		_, err = io.Copy(io.Discard, res.Body)
	case *bytes.Buffer:
		_, err = io.Copy(out, res.Body)
	default:
		err = json.NewDecoder(res.Body).Decode(out)
	}
	if err != nil {
		return fmt.Errorf("read %s %s answer: %w", method, path, err)
	}
	return nil
}
