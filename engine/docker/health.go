package docker

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

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/cutover/cutover/engine"
)

// crashLogLines is how many of a crashed instance's last output lines
// Health puts in its Detail: usually enough to show why it died.
const crashLogLines = 3

// defaultProbeTimeout applies when the check names none.
const defaultProbeTimeout = 2 * time.Second

// Health probes the instance once. Docker's view comes first: an exited,
// dead or restarting container is crashed (waiting will not make it
// healthy); Restarts counts the restarts of a running one. A running one gets an HTTP GET of check.Path: 2xx and 3xx
// pass. Where the image has its own HEALTHCHECK, its state is reported in
// Docker and must agree before the instance counts as healthy.
// A failed probe is a verdict, not an error; errors are Docker's.
func (p *Platform) Health(ctx context.Context, id string, check engine.HealthCheck) (engine.Health, error) {
	info, err := p.cli.ContainerInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return engine.Health{Status: engine.HealthCrashed, Detail: "container is gone"}, nil
	}
	if err != nil {
		return engine.Health{Status: engine.HealthUnknown}, fmt.Errorf("health of instance %s: %w", id, err)
	}
	if info.ContainerJSONBase == nil || info.State == nil {
		return engine.Health{Status: engine.HealthUnknown}, fmt.Errorf("health of instance %s: Docker reports no state", id)
	}
	st := info.State
	h := engine.Health{}
	if st.Health != nil {
		h.Docker = string(st.Health.Status)
	}

	switch st.Status {
	case container.StateExited, container.StateDead:
		h.Status = engine.HealthCrashed
		h.Detail = p.crashDetail(ctx, id, fmt.Sprintf("exited with code %d", st.ExitCode), st)
		return h, nil
	case container.StateRestarting:
		h.Status = engine.HealthCrashed
		h.Detail = p.crashDetail(ctx, id, fmt.Sprintf("restarting (%d restarts, last exit code %d)", info.RestartCount, st.ExitCode), st)
		return h, nil
	case container.StateCreated:
		h.Status = engine.HealthStarting
		h.Detail = "created, not started"
		return h, nil
	case container.StatePaused:
		h.Status = engine.HealthUnhealthy
		h.Detail = "paused"
		return h, nil
	case container.StateRemoving:
		h.Status = engine.HealthCrashed
		h.Detail = "being removed"
		return h, nil
	}
	// Running again after Docker restarted it: the probe says whether it
	// serves now. The engine, which knows the count at launch, treats a
	// restart of an instance it watches as a crash; an instance that came
	// back weeks ago is simply healthy (the restart count shows).
	h.Restarts = info.RestartCount

	addr := addrOf(info)
	if addr == "" {
		h.Status = engine.HealthUnhealthy
		h.Detail = "running but has no address (no published port)"
		return h, nil
	}
	status, detail := p.probeHTTP(ctx, addr, check)
	h.Status, h.Detail = status, detail
	switch h.Docker {
	case "", string(container.Healthy), string(container.NoHealthcheck):
	case string(container.Unhealthy):
		if h.Status == engine.HealthHealthy {
			h.Status = engine.HealthUnhealthy
			h.Detail = "Docker HEALTHCHECK: unhealthy" + lastHealthOutput(st.Health)
		}
	case string(container.Starting):
		if h.Status == engine.HealthHealthy {
			h.Status = engine.HealthStarting
			h.Detail = "Docker HEALTHCHECK: starting"
		}
	}
	return h, nil
}

// probeHTTP GETs http://addr+check.Path once.
func (p *Platform) probeHTTP(ctx context.Context, addr string, check engine.HealthCheck) (engine.HealthStatus, string) {
	path := check.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	timeout := check.Timeout
	if timeout <= 0 {
		timeout = defaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return engine.HealthUnhealthy, fmt.Sprintf("GET %s: %v", path, err)
	}
	req.Header.Set("User-Agent", "cutover-health")
	resp, err := p.probe.Do(req)
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

// crashDetail adds the container's last output lines, and the OOM kill
// Docker recorded, to what to tell an operator about a crash.
func (p *Platform) crashDetail(ctx context.Context, id, what string, st *container.State) string {
	if st.OOMKilled {
		what += ", killed: out of memory"
	}
	if st.Error != "" {
		what += ": " + st.Error
	}
	lines, err := p.Logs(ctx, id, crashLogLines)
	if err != nil || len(lines) == 0 {
		return what
	}
	return what + "; last output: " + strings.Join(lines, " | ")
}

func lastHealthOutput(h *container.Health) string {
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	last := h.Log[len(h.Log)-1]
	if out := strings.TrimSpace(last.Output); out != "" {
		return fmt.Sprintf(" (exit %d: %s)", last.ExitCode, out)
	}
	return fmt.Sprintf(" (exit %d)", last.ExitCode)
}

// demuxLines splits Docker's multiplexed log stream (non-TTY containers)
// into lines, stdout and stderr together.
func demuxLines(r io.Reader) ([]string, error) {
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
	return lines, nil
}
