package ecr

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrorKind classifies what went wrong talking to ECR.
type ErrorKind string

// Error kinds, each with its own advice.
const (
	ErrNoCredentials      ErrorKind = "no-credentials"      // the SDK's chain found none, or could not refresh them
	ErrExpiredCredentials ErrorKind = "expired-credentials" // a session token or SSO session has run out
	ErrBadCredentials     ErrorKind = "invalid-credentials" // AWS does not recognise the key or signature
	ErrAccessDenied       ErrorKind = "access-denied"       // IAM refused the action on the resource
	ErrRepositoryNotFound ErrorKind = "repository-not-found"
	ErrImageNotFound      ErrorKind = "image-not-found"
	ErrNoRegion           ErrorKind = "no-region"
	ErrUnreachable        ErrorKind = "unreachable" // no answer from the endpoint
	ErrThrottled          ErrorKind = "throttled"   // still throttled after the SDK's retries
	ErrOther              ErrorKind = "other"
)

// Error is an ECR failure explained: what was being done, what is wrong,
// what to do about it, and the SDK's error underneath.
type Error struct {
	Kind    ErrorKind
	Op      string // "list images of api"; empty when the caller names it
	Problem string
	Advice  string
	Err     error
}

func (e *Error) Error() string {
	s := e.Problem
	if e.Op != "" {
		s = e.Op + ": " + s
	}
	if e.Advice != "" {
		s += "; " + e.Advice
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// IsKind reports whether err is an *Error of kind k.
func IsKind(err error, k ErrorKind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// explain maps an error of the Registry's SDK calls to an *Error.
func (r *Registry) explain(op, repo string, err error) error {
	cfg := r.cfg
	cfg.Repository = repo
	return explain(op, cfg, r.region, err)
}

// explain turns the SDK's typed errors into messages that say what is
// wrong and what to do. Context cancellation passes through unexplained.
func explain(op string, cfg Config, region string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	e := &Error{Kind: ErrOther, Op: op, Problem: err.Error(), Err: err}
	registry := "the caller's account"
	if cfg.RegistryID != "" {
		registry = "account " + cfg.RegistryID
	}
	where := fmt.Sprintf("%s in %s, region %s", quote(cfg.Repository), registry, orNone(region))

	var (
		credErr     *credentialsError
		noProfile   config.SharedConfigProfileNotExistError
		noRegion    *aws.MissingRegionError
		notFound    *types.RepositoryNotFoundException
		noImage     *types.ImageNotFoundException
		sendErr     *smithyhttp.RequestSendError
		apiErr      smithy.APIError
		operation   *smithy.OperationError
		profileHint = "AWS_PROFILE or source.profile"
	)
	action := "ecr:*"
	if errors.As(err, &operation) {
		action = "ecr:" + operation.OperationName
	}
	switch {
	case errors.As(err, &noProfile):
		e.Kind = ErrNoCredentials
		e.Problem = fmt.Sprintf("AWS profile %q is not in the shared config or credentials file", noProfile.Profile)
		e.Advice = "fix source.profile in cutover.yaml (or AWS_PROFILE), or add the profile with `aws configure --profile " + noProfile.Profile + "`"
	case errors.As(err, &noRegion):
		e.Kind = ErrNoRegion
		e.Problem = "no AWS region is set"
		e.Advice = "set source.region in cutover.yaml, AWS_REGION, or region in the AWS profile"
	case errors.As(err, &credErr):
		e.Kind = ErrNoCredentials
		e.Problem = "no usable AWS credentials: " + lastCause(credErr.err)
		e.Advice = "cutover uses the AWS SDK's default chain: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, " +
			profileHint + " (run `aws sso login` for SSO profiles), or give this host an instance or task role"
		if strings.Contains(strings.ToLower(credErr.Error()), "expired") {
			e.Kind = ErrExpiredCredentials
			e.Advice = "refresh them: `aws sso login` for SSO profiles, or new session credentials"
		}
	case errors.As(err, &notFound):
		e.Kind = ErrRepositoryNotFound
		e.Problem = "repository " + where + " does not exist"
		e.Advice = "check source.repository, source.registry_id and source.region in cutover.yaml (`aws ecr describe-repositories` lists the repositories)"
	case errors.As(err, &noImage):
		e.Kind = ErrImageNotFound
		e.Problem = "no such image in " + where
		e.Advice = "`cutover images SERVICE` lists the tags there are"
	case errors.As(err, &apiErr):
		switch code := apiErr.ErrorCode(); code {
		case "ExpiredTokenException", "ExpiredToken", "RequestExpired", "TokenRefreshRequired":
			e.Kind = ErrExpiredCredentials
			e.Problem = "the AWS credentials have expired (" + code + ")"
			e.Advice = "refresh them: `aws sso login` for SSO profiles, or new session credentials; check the host's clock if this repeats"
		case "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "SignatureDoesNotMatch", "IncompleteSignature":
			e.Kind = ErrBadCredentials
			e.Problem = "AWS rejected the credentials (" + code + ": " + apiErr.ErrorMessage() + ")"
			e.Advice = "check the access key and secret (or " + profileHint + ") and that they belong to the intended account"
		case "AccessDeniedException", "AccessDenied":
			e.Kind = ErrAccessDenied
			resource := repositoryARN(cfg, region)
			if action == "ecr:GetAuthorizationToken" {
				resource = `"*"` // the token is not scoped to a repository
			}
			e.Problem = fmt.Sprintf("access denied to %s (repository %s): %s", action, where, apiErr.ErrorMessage())
			e.Advice = fmt.Sprintf("allow %s on %s for the principal named above (the README lists the IAM actions cutover needs)",
				action, resource)
		case "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded":
			e.Kind = ErrThrottled
			e.Problem = "ECR is throttling requests, still after the SDK's retries with backoff"
			e.Advice = "try again shortly; raise AWS_MAX_ATTEMPTS or set AWS_RETRY_MODE=adaptive if this repeats"
		default:
			e.Problem = code + ": " + apiErr.ErrorMessage()
		}
	case errors.As(err, &sendErr):
		e.Kind = ErrUnreachable
		endpoint, cause := "the ECR endpoint", sendErr.Err
		var uerr *url.Error
		if errors.As(err, &uerr) {
			cause = uerr.Err
			if u, perr := url.Parse(uerr.URL); perr == nil {
				endpoint = u.Scheme + "://" + u.Host
			}
		}
		e.Problem = fmt.Sprintf("cannot reach %s: %v", endpoint, cause)
		e.Advice = "check the network and proxy settings, source.endpoint / AWS_ENDPOINT_URL_ECR, and the VPC endpoint's DNS if one is used"
	}
	return e
}

// lastCause is the innermost part of a chain of "a: b: c" messages that
// still says something: the SDK repeats its operation and layer names.
func lastCause(err error) string {
	msg := err.Error()
	for _, marker := range []string{"failed to refresh cached credentials, ", "get credentials: "} {
		if i := strings.LastIndex(msg, marker); i >= 0 {
			msg = msg[i+len(marker):]
		}
	}
	return msg
}

// repositoryARN names the repository as IAM policies do; unknown parts are
// wildcards.
func repositoryARN(cfg Config, region string) string {
	account := cfg.RegistryID
	if account == "" {
		account = "ACCOUNT_ID"
	}
	return fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", orNone(region), account, cfg.Repository)
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
