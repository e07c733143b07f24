// Package ecr lists candidate images from an AWS ECR repository and pulls
// them onto a Docker host with ECR credentials. Everything AWS-specific
// that the SDK does (credential chain, endpoint resolution, signing,
// retries with backoff on throttling) is left to aws-sdk-go-v2.
package ecr

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/cutover/cutover/engine"
)

// Compile-time proof that Registry is what the engine needs.
var _ engine.Registry = (*Registry)(nil)

// Config says which repository to list and how to reach ECR. It mirrors
// a service's `source:` block in cutover.yaml.
type Config struct {
	Repository string // repository name; used when ListImages is given ""
	Region     string // empty: the SDK's chain (AWS_REGION, the profile)
	Profile    string // shared-config profile; empty: AWS_PROFILE or default
	RegistryID string // 12-digit account id; empty: the caller's account
	Endpoint   string // base URL of the ECR API; empty: the SDK's (AWS_ENDPOINT_URL_ECR works too)
	TagFilter  string // Go regexp; only matching tags are listed
	Semver     bool   // order by semantic version instead of push time
	// IncludeUntagged lists images that have no tag at all.
	IncludeUntagged bool
}

// API is the part of the ECR client a Registry uses. *ecr.Client
// implements it; tests substitute fakes of many pages.
type API interface {
	ecr.DescribeImagesAPIClient
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, opts ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// Registry is one ECR registry (an account in a region) seen through a
// Config. It is safe for concurrent use.
type Registry struct {
	api    API
	cfg    Config
	region string
	filter *regexp.Regexp
	now    func() time.Time

	mu   sync.Mutex
	auth *Auth // cached token, until shortly before it expires
}

// New loads AWS configuration the SDK's way (config.LoadDefaultConfig with
// the region and profile of cfg) and returns a Registry over a new ECR
// client. It makes no request; a missing region fails here.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	var opts []func(*config.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.Endpoint != "" {
		opts = append(opts, config.WithBaseEndpoint(cfg.Endpoint))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, explain("load AWS configuration", cfg, cfg.Region, err)
	}
	if awsCfg.Region == "" {
		return nil, explain("load AWS configuration", cfg, "", &aws.MissingRegionError{})
	}
	if awsCfg.Credentials != nil {
		// Tag failures of the credential chain, which the SDK reports as
		// plain text, so they can be told apart from the API's errors.
		awsCfg.Credentials = credentials{awsCfg.Credentials}
	}
	return NewWithAPI(ecr.NewFromConfig(awsCfg), cfg, awsCfg.Region)
}

// NewWithAPI returns a Registry over api, for callers that configured a
// client themselves and for tests. region is used in messages only.
func NewWithAPI(api API, cfg Config, region string) (*Registry, error) {
	r := &Registry{api: api, cfg: cfg, region: region, now: time.Now}
	if cfg.TagFilter != "" {
		re, err := regexp.Compile(cfg.TagFilter)
		if err != nil {
			return nil, fmt.Errorf("ecr: tag filter %q: %w", cfg.TagFilter, err)
		}
		r.filter = re
	}
	return r, nil
}

// Region is the AWS region the registry is in.
func (r *Registry) Region() string { return r.region }

// repo returns repo, or the configured repository when repo is empty.
func (r *Registry) repo(repo string) string {
	if repo == "" {
		return r.cfg.Repository
	}
	return repo
}

func (r *Registry) registryID() *string {
	if r.cfg.RegistryID == "" {
		return nil
	}
	return aws.String(r.cfg.RegistryID)
}

// credentials wraps the SDK's credential provider so that its failures
// carry a type (credentialsError) through the SDK's wrapping.
type credentials struct{ p aws.CredentialsProvider }

func (c credentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	v, err := c.p.Retrieve(ctx)
	if err != nil {
		return v, &credentialsError{err: err}
	}
	return v, nil
}

type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }
