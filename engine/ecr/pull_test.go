package ecr_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/registry"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/demo/demotest"
	"github.com/cutover/cutover/engine/ecr"
)

// tokenAPI answers GetAuthorizationToken as ECR does, for the local
// registry: a base64 "AWS:password" token and the registry as proxy endpoint.
func tokenAPI(addr string, passwords ...string) *pagedAPI {
	api := &pagedAPI{}
	for _, p := range passwords {
		api.tokens = append(api.tokens, types.AuthorizationData{
			AuthorizationToken: aws.String(base64.StdEncoding.EncodeToString([]byte("AWS:" + p))),
			ProxyEndpoint:      aws.String("http://" + addr),
			ExpiresAt:          aws.Time(time.Now().Add(12 * time.Hour)),
		})
	}
	return api
}

// countingAPI counts token requests and hands out its tokens in turn.
type countingAPI struct {
	*pagedAPI
	calls int
}

func (c *countingAPI) GetAuthorizationToken(ctx context.Context, in *awsecrTokenInput, opts ...func(*awsecrOptions)) (*awsecrTokenOutput, error) {
	i := min(c.calls, len(c.tokens)-1)
	c.calls++
	return &awsecrTokenOutput{AuthorizationData: c.tokens[i : i+1]}, nil
}

func TestPullByDigestWithECRLoginThenLaunchHealthy(t *testing.T) {
	const password = "ecr-token-password"
	images := demotest.Images(t)
	p := demotest.Docker(t)
	addr := demotest.Registry(t, "AWS", password)
	ctx := context.Background()
	cli := p.Client()

	// CI's side: push a demo image into the registry with the login.
	repo := "team/" + demotest.Repo()
	pushed := fmt.Sprintf("%s/%s:1.0.0", addr, repo)
	if err := cli.ImageTag(ctx, images["1.0.0"], pushed); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), pushed, image.RemoveOptions{}) })
	login, _ := registry.EncodeAuthConfig(registry.AuthConfig{Username: "AWS", Password: password, ServerAddress: addr})
	rc, err := cli.ImagePush(ctx, pushed, image.PushOptions{RegistryAuth: login})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	info, err := cli.ImageInspect(ctx, pushed)
	if err != nil {
		t.Fatal(err)
	}
	digest := ""
	for _, rd := range info.RepoDigests {
		if r, d, ok := strings.Cut(rd, "@"); ok && r == addr+"/"+repo {
			digest = d
		}
	}
	if digest == "" {
		t.Fatalf("push left no registry digest (%v): %s", info.RepoDigests, out)
	}
	// Only the pull may bring it back.
	if _, err := cli.ImageRemove(ctx, pushed, image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}

	// The first token is stale: the puller must renew it once and succeed.
	api := &countingAPI{pagedAPI: tokenAPI(addr, "stale", password)}
	reg, err := ecr.NewWithAPI(api, ecr.Config{Repository: repo}, "local")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := reg.ImageRef(ctx, repo, digest)
	if err != nil || ref != addr+"/"+repo+"@"+digest {
		t.Fatalf("image ref %q, %v", ref, err)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{})
	})
	target := engine.Target{Image: ref, Version: "1.0.0", Digest: digest}
	var progress []string
	puller := ecr.NewPuller(reg, p)
	if err := puller.Pull(ctx, target, func(s string) { progress = append(progress, s) }); err != nil {
		t.Fatalf("pull: %v", err)
	}
	if api.calls != 2 {
		t.Errorf("%d token requests, want 2 (the refused one renewed once)", api.calls)
	}
	if len(progress) == 0 {
		t.Error("pull reported no progress")
	}
	got, err := p.ImageInfo(ctx, ref)
	if err != nil || got.Digest != digest {
		t.Fatalf("after the pull: %+v, %v; want digest %s", got, err, digest)
	}

	// Pulling again finds it on the host and asks for no token.
	if err := puller.Pull(ctx, target, nil); err != nil || api.calls != 2 {
		t.Errorf("second pull: %v after %d token requests, want nothing fetched", err, api.calls)
	}

	// The instance's digest label is the registry digest ECR would list,
	// so the picker can mark the running image.
	in := demotest.Launch(t, p, engine.InstanceSpec{Service: "ecrpull", Version: "1.0.0", Image: ref, ReleaseID: "test"})
	demotest.WaitHealth(t, p, in.ID, engine.HealthCheck{Path: "/healthz", Timeout: time.Second}, engine.HealthHealthy, 30*time.Second)
	if in.Digest != digest {
		t.Errorf("instance digest label %q, want the registry digest %s", in.Digest, digest)
	}
}

func TestPullWithARefusedLoginSaysSo(t *testing.T) {
	p := demotest.Docker(t)
	addr := demotest.Registry(t, "AWS", "right")
	api := &countingAPI{pagedAPI: tokenAPI(addr, "wrong")}
	reg, _ := ecr.NewWithAPI(api, ecr.Config{Repository: "web"}, "local")
	digest := "sha256:" + strings.Repeat("ab", 32)
	err := ecr.NewPuller(reg, p).Pull(context.Background(), engine.Target{Image: addr + "/web@" + digest, Version: "x", Digest: digest}, nil)
	if err == nil || api.calls != 2 {
		t.Fatalf("pull with a wrong password: %v after %d token requests, want a failure after one renewal", err, api.calls)
	}
	if !ecr.IsKind(err, ecr.ErrExpiredCredentials) || !strings.Contains(err.Error(), "refused the login") {
		t.Errorf("error %v: want it to say the registry refused the login", err)
	}
	t.Logf("message: %v", err)
}

type (
	awsecrTokenInput  = awsecr.GetAuthorizationTokenInput
	awsecrTokenOutput = awsecr.GetAuthorizationTokenOutput
	awsecrOptions     = awsecr.Options
)

func TestRegistryAuthLogsInToItsOwnRegistryOnly(t *testing.T) {
	const addr = "127.0.0.1:5999"
	api := &countingAPI{pagedAPI: tokenAPI(addr, "secret")}
	reg, err := ecr.NewWithAPI(api, ecr.Config{Repository: "web"}, "local")
	if err != nil {
		t.Fatal(err)
	}
	p := ecr.NewPuller(reg, nil)
	ctx := context.Background()
	header, err := p.RegistryAuth(ctx, addr+"/web@sha256:"+strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := registry.EncodeAuthConfig(registry.AuthConfig{Username: "AWS", Password: "secret", ServerAddress: addr})
	if header != want {
		t.Errorf("login for the registry's image = %q, want %q", header, want)
	}
	for _, ref := range []string{"cutover-demo:1.0.0", "sha256:" + strings.Repeat("cd", 32), "other.example:5000/web:1"} {
		if h, err := p.RegistryAuth(ctx, ref); h != "" || err != nil {
			t.Errorf("login for %s = %q, %v; want none: the token is for %s only", ref, h, err, addr)
		}
	}
}
