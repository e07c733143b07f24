package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/ecr/ecrtest"
	"github.com/cutover/cutover/tui"
)

// ecrConfig writes a config with one service whose images come from the
// ECR repository repo on moto.
func ecrConfig(t *testing.T, endpoint, repo, extra string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`state_dir: .cutover
services:
  api:
    image: %s
    source:
      type: ecr
      region: us-east-1
      endpoint: %s
%s`, repo, endpoint, extra)
	path := filepath.Join(dir, "cutover.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImagesListsAnECRRepositoryNewestFirstWithTagsGrouped(t *testing.T) {
	endpoint := ecrtest.Endpoint(t)
	ctx := context.Background()
	seed := ecrtest.NewSeeder(t, endpoint, "api")
	seed.Push(ctx, "api", 1, "v1.0.0")
	seed.Push(ctx, "api", 2, "v1.1.0", "latest")
	seed.Push(ctx, "api", 3) // untagged: hidden
	seed.Push(ctx, "api", 4, "v1.2.0-rc1")
	path := ecrConfig(t, endpoint, "api", "      semver: true\n")
	bin := demotest.Binary(t)

	out, errs, code := runBinary(t, bin, "-c", path, "images", "api", "-o", "json")
	if code != 0 {
		t.Fatalf("cutover images: exit %d\n%s", code, errs)
	}
	var rows []imageRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join(r.Tags, "+"))
	}
	want := []string{"v1.2.0-rc1", "v1.1.0+latest", "v1.0.0"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("images %v, want %v (semver order, tags grouped, untagged hidden)", got, want)
	}

	// A repository that does not exist says which and changes nothing.
	path = ecrConfig(t, endpoint, "nope", "")
	_, errs, code = runBinary(t, bin, "-c", path, "images", "api")
	if code != exitError || !strings.Contains(errs, "nope") {
		t.Errorf("missing repository: exit %d, stderr %q; want exit 1 naming the repository", code, errs)
	}
}

func TestConsolePickerGetsECRImagesPageByPage(t *testing.T) {
	endpoint := ecrtest.Endpoint(t)
	ctx := context.Background()
	seed := ecrtest.NewSeeder(t, endpoint, "api")
	for i := 1; i <= 5; i++ {
		seed.Push(ctx, "api", i, fmt.Sprintf("1.%d.0", i))
	}
	demotest.Docker(t) // the backend connects to Docker for the running marks
	cfg, err := config.Load(ecrConfig(t, endpoint, "api", ""))
	if err != nil {
		t.Fatal(err)
	}
	b, err := newConsoleBackend(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var all []tui.ImageRow
	pages := 0
	if err := b.ImagePages(ctx, "api", func(rows []tui.ImageRow) { pages++; all = append(all, rows...) }); err != nil {
		t.Fatal(err)
	}
	if pages < 1 || len(all) != 5 {
		t.Fatalf("got %d images in %d pages, want 5", len(all), pages)
	}
	// A row is started by its digest, so a tag moved before Enter cannot
	// change what is deployed; the version is still the row's tag.
	s, err := b.service(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if !strings.HasPrefix(r.Digest, "sha256:") || r.Ref != r.Digest {
			t.Errorf("row %+v: want the ECR digest as the reference", r)
			continue
		}
		target, err := s.resolveTarget(ctx, r.Ref)
		if err != nil {
			t.Fatal(err)
		}
		if target.Version != r.Tags[0] || target.Digest != r.Digest || !strings.HasSuffix(target.Image, "@"+r.Digest) {
			t.Errorf("row %s resolves to %+v; want version %s pinned by its digest", r.Tags[0], target, r.Tags[0])
		}
	}
}

// runBinary runs the built binary and returns its output and exit code.
func runBinary(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CUTOVER_LABELS="+engine.LabelTest+"=1")
	return runCmd(t, cmd)
}
