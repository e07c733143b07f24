package docker_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"

	"github.com/cutover/cutover/engine/demo/demotest"
)

func TestPullFetchesFromRegistryAndSurfacesStreamErrors(t *testing.T) {
	images := demotest.Images(t)
	p := demotest.Docker(t)
	reg := demotest.Registry(t, "", "")
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
