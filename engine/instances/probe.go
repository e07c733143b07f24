package instances

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/pkg/stdcopy"

	"github.com/cutover/cutover/engine"
)

// DefaultProbeTimeout applies when the check names none.
const DefaultProbeTimeout = 2 * time.Second

// Prober sends HTTP health probes. It is safe for concurrent use.
type Prober struct {
	client *http.Client
}

// NewProber returns a prober with one client for every probe.
func NewProber() *Prober {
	return &Prober{client: &http.Client{
		// Probes must see each instance as a new client would: a kept
		// connection could hide a listener that has gone away.
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		// Redirects count as healthy (3xx), so do not follow them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Close releases the prober's connections.
func (p *Prober) Close() { p.client.CloseIdleConnections() }

// Probe GETs http://addr+check.Path once: 2xx and 3xx are healthy, any
// other answer or none is unhealthy, with the reason in a few words.
func (p *Prober) Probe(ctx context.Context, addr string, check engine.HealthCheck) (engine.HealthStatus, string) {
	path := check.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	timeout := check.Timeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return engine.HealthUnhealthy, fmt.Sprintf("GET %s: %v", path, err)
	}
	req.Header.Set("User-Agent", "cutover-health")
	resp, err := p.client.Do(req)
	if err != nil {
		return engine.HealthUnhealthy, fmt.Sprintf("GET %s: %s", path, probeError(err, timeout))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return engine.HealthHealthy, ""
	}
	return engine.HealthUnhealthy, fmt.Sprintf("GET %s: %d", path, resp.StatusCode)
}

// probeError says in a few words why a probe got no answer.
func probeError(err error, timeout time.Duration) string {
	var nerr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		// Docker's userland proxy accepts on the host port even while
		// nothing listens in the container, then hangs up.
		return "connection closed without an answer (not listening yet?)"
	}
	return err.Error()
}

// LogLines splits Docker's multiplexed log stream (a container's or a
// Swarm task's, without a TTY) into lines, stdout and stderr together,
// and keeps the last n.
func LogLines(r io.Reader, n int) ([]string, error) {
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, r); err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if l = strings.TrimRight(l, "\r "); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}
