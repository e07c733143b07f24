package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/docker/docker/api/types/registry"
)

// authMargin is how long before its expiry a cached token is renewed, so
// a pull that starts with it does not outlive it.
const authMargin = 15 * time.Minute

// Auth is a Docker login to an ECR registry, made from an authorization
// token (ECR's tokens last 12 hours).
type Auth struct {
	Registry string // host[:port] of the registry, from the token's proxy endpoint
	Username string // "AWS"
	Password string
	Expires  time.Time // zero: unknown
}

// Header returns the X-Registry-Auth value a Docker engine takes for a
// pull from server (host[:port]; empty means a.Registry).
func (a Auth) Header(server string) (string, error) {
	if server == "" {
		server = a.Registry
	}
	return registry.EncodeAuthConfig(registry.AuthConfig{Username: a.Username, Password: a.Password, ServerAddress: server})
}

// ParseAuthorizationData decodes one entry of GetAuthorizationToken's
// answer: a base64 "user:password" token and the registry's proxy endpoint.
func ParseAuthorizationData(d types.AuthorizationData) (Auth, error) {
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
	if err != nil {
		return Auth{}, fmt.Errorf("decode ECR authorization token: %w", err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return Auth{}, errors.New("decode ECR authorization token: want user:password")
	}
	host := aws.ToString(d.ProxyEndpoint)
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host = strings.TrimSuffix(host, "/")
	if host == "" {
		return Auth{}, errors.New("ECR authorization data has no proxy endpoint")
	}
	return Auth{Registry: host, Username: user, Password: pass, Expires: aws.ToTime(d.ExpiresAt)}, nil
}

// Auth returns a Docker login to the registry, from a cached token while
// it has more than a few minutes left, else from GetAuthorizationToken.
func (r *Registry) Auth(ctx context.Context) (Auth, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a := r.auth; a != nil && (a.Expires.IsZero() || r.now().Add(authMargin).Before(a.Expires)) {
		return *a, nil
	}
	in := &ecr.GetAuthorizationTokenInput{}
	if r.cfg.RegistryID != "" {
		//lint:ignore SA1019 a registry id selects which proxy endpoint answers
		in.RegistryIds = []string{r.cfg.RegistryID}
	}
	out, err := r.api.GetAuthorizationToken(ctx, in)
	if err != nil {
		return Auth{}, r.explain("get a registry login token", r.cfg.Repository, err)
	}
	if len(out.AuthorizationData) == 0 {
		return Auth{}, fmt.Errorf("get a registry login token: ECR answered with no authorization data")
	}
	a, err := ParseAuthorizationData(out.AuthorizationData[0])
	if err != nil {
		return Auth{}, err
	}
	r.auth = &a
	return a, nil
}

// ForgetAuth drops the cached token, after the registry refused it.
func (r *Registry) ForgetAuth() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.auth = nil
}

// ImageRef is how a Docker host pulls digest from repo:
// "<registry host>/<repo>@sha256:…", the host being the token's endpoint.
func (r *Registry) ImageRef(ctx context.Context, repo, digest string) (string, error) {
	a, err := r.Auth(ctx)
	if err != nil {
		return "", err
	}
	return a.Registry + "/" + r.repo(repo) + "@" + digest, nil
}
