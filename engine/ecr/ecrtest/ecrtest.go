// Package ecrtest runs moto_server, Python moto's mock of AWS, as the ECR of
// tests, and pushes images into it through the SDK as CI would.
//
// Use it with a TestMain that stops the server at the end:
//
//	func TestMain(m *testing.M) { code := m.Run(); ecrtest.Stop(); os.Exit(code) }
package ecrtest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
)

// EnvRequire makes tests fail instead of skip where moto_server is missing.
const EnvRequire = "CUTOVER_REQUIRE_INTEGRATION"

// server is one moto_server for the whole test process: it takes a second
// or two to start, and a reset between tests makes it as good as new.
// Package-level because it outlives every test; only tests use it.
var server struct {
	once     sync.Once
	cmd      *exec.Cmd
	endpoint string
	err      error
}

func start() {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		server.err = fmt.Errorf("moto_server not found: %w", err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		server.err = err
		return
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	server.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	if server.err = server.cmd.Start(); server.err != nil {
		return
	}
	server.endpoint = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(server.endpoint + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			server.err = fmt.Errorf("moto_server on %s did not answer within 30s: %w", server.endpoint, err)
			return
		}
		time.Sleep(50 * time.Millisecond) // polling an observable: the server coming up
	}
}

// Stop ends the moto_server this process started, if any.
func Stop() {
	if server.cmd != nil && server.cmd.Process != nil {
		_ = server.cmd.Process.Kill()
		_ = server.cmd.Wait()
	}
}

// Endpoint returns the URL of a freshly reset moto_server, and points the
// AWS SDK's environment at static test credentials in us-east-1 (no shared
// config files of the host). It skips without moto_server, unless
// CUTOVER_REQUIRE_INTEGRATION=1.
func Endpoint(tb testing.TB) string {
	tb.Helper()
	server.once.Do(start)
	if server.err != nil {
		if os.Getenv(EnvRequire) == "1" {
			tb.Fatalf("moto_server is required (%s=1): %v", EnvRequire, server.err)
		}
		tb.Skipf("skipping: needs moto_server (pip install 'moto[server]'): %v", server.err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, server.endpoint+"/moto-api/reset", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("reset moto: %v", err)
	}
	resp.Body.Close()
	Env(tb)
	return server.endpoint
}

// Env isolates the SDK from the host's AWS settings and gives it static
// test credentials; child processes inherit it.
func Env(tb testing.TB) {
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
		if t, ok := tb.(interface{ Setenv(k, v string) }); ok {
			t.Setenv(k, v)
		} else {
			os.Setenv(k, v)
		}
	}
}

// Seeder pushes images into moto through the SDK, as CI would push them.
type Seeder struct {
	tb  testing.TB
	cli *awsecr.Client
}

// NewSeeder connects to endpoint and creates repos.
func NewSeeder(tb testing.TB, endpoint string, repos ...string) *Seeder {
	tb.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithBaseEndpoint(endpoint))
	if err != nil {
		tb.Fatal(err)
	}
	s := &Seeder{tb: tb, cli: awsecr.NewFromConfig(cfg)}
	for _, r := range repos {
		if _, err := s.cli.CreateRepository(context.Background(), &awsecr.CreateRepositoryInput{RepositoryName: aws.String(r)}); err != nil {
			tb.Fatalf("create repository %s: %v", r, err)
		}
	}
	return s
}

// Manifest is a Docker v2 manifest whose layer digest depends on seed, so
// every seed is a distinct image (moto derives the digest from layers).
func Manifest(seed int) string {
	h := func(s string) string { return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s))) }
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.docker.distribution.manifest.v2+json",
		"config":        map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": 100 + seed, "digest": h(fmt.Sprint("config", seed))},
		"layers": []any{map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
			"size": 1000 + seed, "digest": h(fmt.Sprint("layer", seed))}},
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// Push puts the image of seed into repo under each tag (none: untagged)
// and returns its digest.
func (s *Seeder) Push(ctx context.Context, repo string, seed int, tags ...string) string {
	s.tb.Helper()
	if len(tags) == 0 {
		tags = []string{""}
	}
	digest := ""
	for _, tag := range tags {
		in := &awsecr.PutImageInput{RepositoryName: aws.String(repo), ImageManifest: aws.String(Manifest(seed)),
			ImageManifestMediaType: aws.String("application/vnd.docker.distribution.manifest.v2+json")}
		if tag != "" {
			in.ImageTag = aws.String(tag)
		}
		out, err := s.cli.PutImage(ctx, in)
		if err != nil {
			s.tb.Fatalf("put image %d:%s: %v", seed, tag, err)
		}
		digest = aws.ToString(out.Image.ImageId.ImageDigest)
	}
	return digest
}

// Client is the seeder's SDK client, for calls the helpers do not cover.
func (s *Seeder) Client() *awsecr.Client { return s.cli }
