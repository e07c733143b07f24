// Package promtest runs a real Prometheus server for tests: Debian's
// prometheus package, on a free loopback port, with storage in a
// temporary directory, scraping its targets every second.
package promtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/prometheus"
)

// EnvRequire makes tests fail instead of skip where prometheus is missing (CI).
const EnvRequire = "CUTOVER_REQUIRE_INTEGRATION"

// Target is one scrape job: Addr (host:port) serves Path, behind a bearer
// token read from TokenFile when that is set.
type Target struct {
	Job       string
	Addr      string
	Path      string // default /metrics
	TokenFile string
}

// Server is a running Prometheus.
type Server struct {
	URL string // http://127.0.0.1:PORT
	Dir string // its config and storage
}

// Start runs prometheus scraping targets every second, and stops it and
// removes its storage when the test ends. It skips without the binary
// unless CUTOVER_REQUIRE_INTEGRATION=1.
func Start(t testing.TB, targets ...Target) *Server {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("prometheus is required (%s=1): %v", EnvRequire, err)
		}
		t.Skip("skipping: needs Debian's prometheus (apt-get install --no-install-recommends prometheus)")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for _, tg := range targets {
		path := tg.Path
		if path == "" {
			path = "/metrics"
		}
		fmt.Fprintf(&b, "  - job_name: %q\n    metrics_path: %q\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [%q]\n", tg.Job, path, tg.Addr)
		if tg.TokenFile != "" {
			fmt.Fprintf(&b, "    authorization:\n      credentials_file: %q\n", tg.TokenFile)
		}
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	demotest.StartLogged(t, cmd, "prometheus", filepath.Join(dir, "prometheus.log"))
	s := &Server{URL: "http://" + addr, Dir: dir}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus on %s not ready within 30s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // polling an observable: the server coming up
	}
}

// Client is a query client for the server.
func (s *Server) Client(t testing.TB) *prometheus.Client {
	t.Helper()
	c, err := prometheus.New(prometheus.Config{URL: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// WaitValue waits until query answers a value (its series were scraped
// enough for it), and returns it.
func (s *Server) WaitValue(t testing.TB, query string, within time.Duration) float64 {
	t.Helper()
	c := s.Client(t)
	deadline := time.Now().Add(within)
	for {
		v, err := c.Query(context.Background(), query)
		if err == nil && v == v { // not NaN
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus: %s answered nothing within %s: %v", query, within, err)
		}
		time.Sleep(200 * time.Millisecond) // polling an observable: the next scrape
	}
}
