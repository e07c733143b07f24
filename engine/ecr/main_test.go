package ecr_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine/demo/demotest"
)

func TestMain(m *testing.M) {
	code := demotest.Main(m)
	moto.stop()
	os.Exit(code)
}

// moto is one moto_server for the whole test process: it takes a second
// or two to start, and a reset between tests makes it as good as new.
// Package-level because it outlives every test; only tests use it.
var moto motoServer

type motoServer struct {
	once     sync.Once
	cmd      *exec.Cmd
	endpoint string
	err      error
}

func (s *motoServer) start() {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		s.err = fmt.Errorf("moto_server not found: %w", err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.err = err
		return
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	if s.err = s.cmd.Start(); s.err != nil {
		return
	}
	s.endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			s.err = fmt.Errorf("moto_server on %s did not answer within 30s: %w", s.endpoint, err)
			return
		}
		time.Sleep(50 * time.Millisecond) // polling an observable: the server coming up
	}
}

func (s *motoServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// motoEndpoint returns the URL of a freshly reset moto_server, and points
// the AWS SDK's environment at static test credentials in us-east-1 (no
// shared config files of the host). It skips without moto_server, unless
// CUTOVER_REQUIRE_INTEGRATION=1.
func motoEndpoint(tb testing.TB) string {
	tb.Helper()
	moto.once.Do(moto.start)
	if moto.err != nil {
		if os.Getenv(demotest.EnvRequire) == "1" {
			tb.Fatalf("moto_server is required (%s=1): %v", demotest.EnvRequire, moto.err)
		}
		tb.Skipf("skipping: needs moto_server (pip install 'moto[server]'): %v", moto.err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, moto.endpoint+"/moto-api/reset", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("reset moto: %v", err)
	}
	resp.Body.Close()
	awsTestEnv(tb)
	return moto.endpoint
}

// awsTestEnv isolates the SDK from the host's AWS settings and gives it
// static test credentials.
func awsTestEnv(tb testing.TB) {
	tb.Helper()
	dir := tb.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "testing",
		"AWS_SECRET_ACCESS_KEY":       "testing",
		"AWS_SESSION_TOKEN":           "",
		"AWS_REGION":                  "us-east-1",
		"AWS_DEFAULT_REGION":          "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_ENDPOINT_URL":            "",
		"AWS_ENDPOINT_URL_ECR":        "",
	} {
		if b, ok := tb.(interface{ Setenv(k, v string) }); ok {
			b.Setenv(k, v)
		} else {
			os.Setenv(k, v)
		}
	}
}
