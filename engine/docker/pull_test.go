package docker_test

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

	"github.com/docker/docker/api/types/image"

	"github.com/cutover/cutover/engine/demo/demotest"
)

// startRegistry runs Debian's docker-registry on a free loopback port and
// returns its host:port. Docker allows plain HTTP to 127.0.0.0/8.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if os.Getenv(demotest.EnvRequire) == "1" {
			t.Fatalf("docker-registry is required (%s=1): %v", demotest.EnvRequire, err)
		}
		t.Skip("skipping: needs Debian's docker-registry (apt-get install docker-registry)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	conf := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry on %s did not answer /v2/: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling an observable: the registry coming up
	}
}

func TestPullFetchesFromRegistryAndSurfacesStreamErrors(t *testing.T) {
	images := demotest.Images(t)
	p := demotest.Docker(t)
	reg := startRegistry(t)
	ctx := context.Background()
	cli := p.Client()

	ref := fmt.Sprintf("%s/%s/web:1.0.0", reg, demotest.Repo())
	if err := cli.ImageTag(ctx, images["1.0.0"], ref); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{}) })
	rc, err := cli.ImagePush(ctx, ref, image.PushOptions{RegistryAuth: "e30="}) // "{}": anonymous
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	// Only the pull may bring it back.
	if _, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}

	var progress []string
	if err := p.Pull(ctx, ref, "", func(s string) { progress = append(progress, s) }); err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if len(progress) == 0 {
		t.Error("pull reported no progress")
	}
	info, err := p.ImageInfo(ctx, ref)
	if err != nil {
		t.Fatalf("after pull: %v", err)
	}
	local, _ := p.ImageInfo(ctx, images["1.0.0"])
	if !strings.HasPrefix(info.Digest, "sha256:") || info.Digest == local.Digest {
		t.Errorf("pulled image digest %s: want the registry's digest, not the image ID %s", info.Digest, local.Digest)
	}

	missing := fmt.Sprintf("%s/%s/web:9.9.9", reg, demotest.Repo())
	err = p.Pull(ctx, missing, "", nil)
	if err == nil || !strings.Contains(err.Error(), "pull "+missing) || !strings.Contains(err.Error(), "not found") && !strings.Contains(err.Error(), "unknown") {
		t.Errorf("pull of a missing tag = %v, want an error naming it", err)
	}
}
