// Package prometheus asks a Prometheus server for the values an analysis
// judges: an engine.MetricsSource over the HTTP API's instant query
// (/api/v1/query).
//
// It is a small client on net/http rather than client_golang's api
// package: the engine needs one call and one number from it, and the
// documented JSON of that call is a few lines to read. Reading it here
// keeps what matters to a verdict in plain sight — an empty result and a
// NaN are "no data", several series are an error, not a value picked
// from them — and spares the binary client_golang's dependencies.
package prometheus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/engine"
)

// DefaultTimeout bounds one query, the server's evaluation included.
const DefaultTimeout = 5 * time.Second

// Config says where the server is.
type Config struct {
	URL     string        // base URL: http://127.0.0.1:9090, or one with a path prefix
	Token   string        // bearer token, if the server (or a proxy before it) wants one
	Timeout time.Duration // per query; 0 is DefaultTimeout
}

// Client queries one Prometheus server.
type Client struct {
	endpoint string
	token    string
	timeout  time.Duration
	http     *http.Client
}

var _ engine.MetricsSource = (*Client)(nil)

// New checks the config and returns a client; it does not connect.
func New(c Config) (*Client, error) {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus: want an http(s) URL, got %q", c.URL)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/query"
	return &Client{endpoint: u.String(), token: c.Token, timeout: c.Timeout, http: &http.Client{}}, nil
}

// response is the API's envelope (https://prometheus.io/docs/prometheus/latest/querying/api/).
type response struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

type series struct {
	Metric map[string]string `json:"metric"`
	Value  sample            `json:"value"`
}

// sample is [unix time, "value"]: the value is a string so NaN and ±Inf survive JSON.
type sample [2]any

func (s sample) float() (float64, error) {
	text, ok := s[1].(string)
	if !ok {
		return 0, fmt.Errorf("value %v is not a string", s[1])
	}
	return strconv.ParseFloat(text, 64) // also reads NaN, +Inf, -Inf
}

// Query evaluates query now. The answer must be one number: a scalar, or
// a vector of one series. An empty vector wraps engine.ErrNoData; a NaN
// is returned as it is (the engine counts both as no data).
func (c *Client) Query(ctx context.Context, query string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	form := url.Values{"query": {query}, "timeout": {c.timeout.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, fmt.Errorf("prometheus: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("prometheus %s: no answer within %s", c.endpoint, c.timeout)
		}
		return 0, fmt.Errorf("prometheus: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("prometheus: read answer: %w", err)
	}
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("prometheus %s: answered %s, not the query API's JSON: %.200s", c.endpoint, resp.Status, body)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s: %s (%s)", r.ErrorType, r.Error, resp.Status)
	}
	return value(r.Data.ResultType, r.Data.Result)
}

// value reads the one number of an instant query's result.
func value(resultType string, raw json.RawMessage) (float64, error) {
	switch resultType {
	case "scalar":
		var s sample
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("prometheus: read scalar: %w", err)
		}
		return s.float()
	case "vector":
		var vs []series
		if err := json.Unmarshal(raw, &vs); err != nil {
			return 0, fmt.Errorf("prometheus: read vector: %w", err)
		}
		switch len(vs) {
		case 0:
			return math.NaN(), fmt.Errorf("%w: the query matched no series", engine.ErrNoData)
		case 1:
			return vs[0].Value.float()
		}
		return 0, fmt.Errorf("prometheus: the query answered %d series (%s), want one value: aggregate them, with sum() or max()",
			len(vs), labelSets(vs, 3))
	}
	return 0, fmt.Errorf("prometheus: the query answered a %s, want a scalar or a vector of one series", resultType)
}

// labelSets names the first n series' labels: "{version="1.0.0"}, …".
func labelSets(vs []series, n int) string {
	var out []string
	for _, s := range vs[:min(n, len(vs))] {
		var kv []string
		for k, v := range s.Metric {
			kv = append(kv, k+"="+strconv.Quote(v))
		}
		sort.Strings(kv)
		out = append(out, "{"+strings.Join(kv, ",")+"}")
	}
	if len(vs) > n {
		out = append(out, "…")
	}
	return strings.Join(out, ", ")
}
