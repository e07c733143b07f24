package ecr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/ecr"
	"github.com/cutover/cutover/engine/ecr/ecrtest"
)

func newRegistry(t *testing.T, endpoint string, cfg ecr.Config) *ecr.Registry {
	t.Helper()
	cfg.Endpoint = endpoint
	r, err := ecr.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestListingGroupsTagsPerDigestNewestFirstAndHidesUntagged(t *testing.T) {
	ep := ecrtest.Endpoint(t)
	ctx := context.Background()
	s := ecrtest.NewSeeder(t, ep, "web")
	want := map[string][]string{} // digest → tags
	for i := range 40 {
		tags := []string{fmt.Sprintf("1.%d.0", i), fmt.Sprintf("build-%03d", i)}
		if i%4 == 0 {
			tags = append(tags, fmt.Sprintf("rc-%d", i))
		}
		d := s.Push(ctx, "web", i, tags...)
		slices.Sort(tags)
		want[d] = tags
	}
	untagged := s.Push(ctx, "web", 999)

	imgs, err := newRegistry(t, ep, ecr.Config{Repository: "web"}).ListImages(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != len(want) {
		t.Fatalf("listed %d images, want %d (one per digest, the untagged one hidden)", len(imgs), len(want))
	}
	for i, img := range imgs {
		tags := slices.Sorted(slices.Values(img.Tags))
		if !slices.Equal(tags, want[img.Digest]) {
			t.Errorf("image %s has tags %v, want %v", img.Digest, img.Tags, want[img.Digest])
		}
		if img.Repository != "web" || img.Pushed.IsZero() || img.Size <= 0 {
			t.Errorf("image %+v: want repository, push time and size", img)
		}
		if img.Digest == untagged {
			t.Errorf("untagged image %s listed", untagged)
		}
		if i == 0 {
			continue
		}
		// Whole-second push times tie; the higher version goes first.
		prev := imgs[i-1]
		if prev.Pushed.Before(img.Pushed) || prev.Pushed.Equal(img.Pushed) && versionOf(prev) < versionOf(img) {
			t.Errorf("order: %v (%s) before %v (%s)", prev.Tags, prev.Pushed, img.Tags, img.Pushed)
		}
	}
	if first := imgs[0].Tags[0]; first != "1.39.0" {
		t.Errorf("newest image's first tag %q, want the highest version 1.39.0 (tags %v)", first, imgs[0].Tags)
	}

	all, err := newRegistry(t, ep, ecr.Config{Repository: "web", IncludeUntagged: true}).ListImages(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all, func(img engine.Image) bool { return img.Digest == untagged && len(img.Tags) == 0 }) {
		t.Errorf("with untagged images asked for, %s is missing", untagged)
	}
}

func versionOf(img engine.Image) int {
	var minor int
	for _, t := range img.Tags {
		if _, err := fmt.Sscanf(t, "1.%d.0", &minor); err == nil {
			return minor
		}
	}
	return -1
}

func TestTagFilterAndSemverOrdering(t *testing.T) {
	ep := ecrtest.Endpoint(t)
	ctx := context.Background()
	s := ecrtest.NewSeeder(t, ep, "api")
	// Pushed out of version order, with build tags and a nightly.
	for i, v := range []string{"v1.10.0", "v1.2.0", "v1.9.0", "v2.0.0-rc.2", "v2.0.0-rc.10", "v1.9.1"} {
		s.Push(ctx, "api", i, v, "sha-"+fmt.Sprint(i))
	}
	s.Push(ctx, "api", 50, "nightly")

	reg := newRegistry(t, ep, ecr.Config{Repository: "api", TagFilter: `^v\d+\.\d+\.\d+`, Semver: true})
	imgs, err := reg.ListImages(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, img := range imgs {
		if len(img.Tags) != 1 {
			t.Errorf("image %s tags %v: the filter should leave only the version tag", img.Digest, img.Tags)
		}
		got = append(got, strings.Join(img.Tags, ","))
	}
	want := []string{"v2.0.0-rc.10", "v2.0.0-rc.2", "v1.10.0", "v1.9.1", "v1.9.0", "v1.2.0"}
	if !slices.Equal(got, want) {
		t.Errorf("semver order %v, want %v (nightly filtered out)", got, want)
	}
}

func TestResolveFindsTheDigestOfATag(t *testing.T) {
	ep := ecrtest.Endpoint(t)
	ctx := context.Background()
	s := ecrtest.NewSeeder(t, ep, "web")
	d1 := s.Push(ctx, "web", 1, "1.0.0", "stable")
	s.Push(ctx, "web", 2, "1.1.0")
	reg := newRegistry(t, ep, ecr.Config{Repository: "web"})

	img, err := reg.Resolve(ctx, "", "stable")
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != d1 || !slices.Contains(img.Tags, "1.0.0") {
		t.Errorf("stable resolved to %+v, want %s with its tags", img, d1)
	}
	byDigest, err := reg.Resolve(ctx, "", d1)
	if err != nil || byDigest.Digest != d1 {
		t.Errorf("resolve by digest: %+v, %v", byDigest, err)
	}
	_, err = reg.Resolve(ctx, "", "9.9.9")
	if !ecr.IsKind(err, ecr.ErrImageNotFound) || !strings.Contains(err.Error(), "9.9.9") {
		t.Errorf("resolve of a missing tag: %v, want image-not-found naming it", err)
	}
}

func TestLoginTokenBecomesDockerRegistryAuth(t *testing.T) {
	ep := ecrtest.Endpoint(t)
	ctx := context.Background()
	ecrtest.NewSeeder(t, ep, "web")
	reg := newRegistry(t, ep, ecr.Config{Repository: "web"})
	a, err := reg.Auth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Username != "AWS" || a.Password == "" || a.Registry != "123456789012.dkr.ecr.us-east-1.amazonaws.com" {
		t.Errorf("auth %+v: want user AWS, a password and the proxy endpoint's host", a)
	}
	ref, err := reg.ImageRef(ctx, "web", "sha256:abc")
	if err != nil || ref != "123456789012.dkr.ecr.us-east-1.amazonaws.com/web@sha256:abc" {
		t.Errorf("image ref %q, %v", ref, err)
	}
}

func TestMissingRepositorySaysWhichAndWhatToCheck(t *testing.T) {
	ep := ecrtest.Endpoint(t)
	ecrtest.NewSeeder(t, ep, "web")
	_, err := newRegistry(t, ep, ecr.Config{Repository: "nope"}).ListImages(context.Background(), "")
	var e *ecr.Error
	if !errors.As(err, &e) || e.Kind != ecr.ErrRepositoryNotFound {
		t.Fatalf("error %v, want repository-not-found", err)
	}
	for _, want := range []string{`"nope"`, "us-east-1", "source.repository"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	t.Logf("message: %v", err)
}

func TestNoCredentialsSaysHowToProvideThem(t *testing.T) {
	ep := ecrtest.Endpoint(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	_, err := newRegistry(t, ep, ecr.Config{Repository: "web"}).ListImages(context.Background(), "")
	if !ecr.IsKind(err, ecr.ErrNoCredentials) || !strings.Contains(err.Error(), "AWS_PROFILE") {
		t.Fatalf("error %v, want no-credentials with advice", err)
	}
	t.Logf("message: %v", err)
}

func TestUnreachableEndpointNamesIt(t *testing.T) {
	ecrtest.Env(t)
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = newRegistry(t, ep, ecr.Config{Repository: "web"}).ListImages(context.Background(), "")
	if !ecr.IsKind(err, ecr.ErrUnreachable) || !strings.Contains(err.Error(), ep) || !strings.Contains(err.Error(), "AWS_ENDPOINT_URL_ECR") {
		t.Fatalf("error %v, want unreachable naming %s", err, ep)
	}
	t.Logf("message: %v", err)
}

func TestMissingRegionFailsBeforeAnyRequest(t *testing.T) {
	ecrtest.Env(t)
	t.Setenv("AWS_REGION", "")
	_, err := ecr.New(context.Background(), ecr.Config{Repository: "web"})
	if !ecr.IsKind(err, ecr.ErrNoRegion) || !strings.Contains(err.Error(), "source.region") {
		t.Fatalf("error %v, want no-region with advice", err)
	}
	t.Logf("message: %v", err)
}

func TestEndpointFromTheSDKsEnvironmentVariable(t *testing.T) {
	ep := ecrtest.Endpoint(t)
	ctx := context.Background()
	s := ecrtest.NewSeeder(t, ep, "web")
	d := s.Push(ctx, "web", 1, "1.0.0")
	t.Setenv("AWS_ENDPOINT_URL_ECR", ep)
	imgs, err := newRegistry(t, "", ecr.Config{Repository: "web"}).ListImages(ctx, "")
	if err != nil || len(imgs) != 1 || imgs[0].Digest != d {
		t.Fatalf("listing through AWS_ENDPOINT_URL_ECR: %+v, %v", imgs, err)
	}
}
