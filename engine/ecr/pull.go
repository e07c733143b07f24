package ecr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cutover/cutover/engine"
)

// Host is the Docker side of a pull. *docker.Platform implements it.
type Host interface {
	// Pull pulls ref with auth (an X-Registry-Auth value), reporting
	// status lines to progress.
	Pull(ctx context.Context, ref, auth string, progress func(string)) error
}

// inspector is what a Host may also do: tell whether an image is there.
type inspector interface {
	ImageInfo(ctx context.Context, ref string) (engine.Image, error)
}

// Puller pulls a release's image from ECR onto a Docker host by digest,
// with a login from GetAuthorizationToken. It implements engine.Puller.
type Puller struct {
	reg  *Registry
	host Host
}

var _ engine.Puller = (*Puller)(nil)

// NewPuller returns a Puller from reg onto host.
func NewPuller(reg *Registry, host Host) *Puller { return &Puller{reg: reg, host: host} }

// Pull fetches target's image by digest (so a tag moved since the choice
// changes nothing), unless the host already has it. A login the registry
// refuses is renewed once; other failures say what to do.
func (p *Puller) Pull(ctx context.Context, target engine.Target, progress func(string)) error {
	ref, err := byDigest(target)
	if err != nil {
		return err
	}
	if in, ok := p.host.(inspector); ok {
		if _, err := in.ImageInfo(ctx, ref); err == nil {
			if progress != nil {
				progress(ref + " is already on the host")
			}
			return nil
		}
	}
	server := refHost(ref)
	for attempt := 0; ; attempt++ {
		auth, err := p.reg.Auth(ctx)
		if err != nil {
			return err
		}
		header, err := auth.Header(server)
		if err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
		err = p.host.Pull(ctx, ref, header, progress)
		if err == nil {
			return nil
		}
		if attempt == 0 && refused(err) && ctx.Err() == nil {
			p.reg.ForgetAuth() // perhaps revoked or expired early: one fresh token
			continue
		}
		return p.explainPull(ref, err)
	}
}

// RegistryAuth returns the X-Registry-Auth value for pulling ref, made
// from the token Pull uses, so that Swarm can hand it to every node that
// runs a task of ref (what `docker service create --with-registry-auth`
// does). An image of another registry, or of none, gets "": the login
// goes to this registry only.
func (p *Puller) RegistryAuth(ctx context.Context, ref string) (string, error) {
	return p.reg.RegistryAuth(ctx, ref)
}

// RegistryAuth is the X-Registry-Auth value for pulling ref from this
// registry, "" for an image of another registry or of none (see
// Puller.RegistryAuth). The token is the one Auth caches.
func (r *Registry) RegistryAuth(ctx context.Context, ref string) (string, error) {
	server := refHost(ref)
	if server == "" {
		return "", nil
	}
	auth, err := r.Auth(ctx)
	if err != nil {
		return "", err
	}
	if server != auth.Registry {
		return "", nil
	}
	return auth.Header(server)
}

// byDigest is target's image named by digest: repo@sha256:….
func byDigest(t engine.Target) (string, error) {
	ref := t.Image
	if strings.Contains(ref, "@") {
		return ref, nil
	}
	if t.Digest == "" {
		return "", fmt.Errorf("pull %s: no digest to pin it by; resolve the tag through ECR first", ref)
	}
	repo := ref
	if slash, colon := strings.LastIndex(ref, "/"), strings.LastIndex(ref, ":"); colon > slash {
		repo = ref[:colon]
	}
	return repo + "@" + t.Digest, nil
}

// refHost is the registry part of a reference ("host:5000/a/b@…" → "host:5000").
func refHost(ref string) string {
	host, _, ok := strings.Cut(ref, "/")
	if !ok || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return ""
	}
	return host
}

func refused(err error) bool {
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "unauthorized") || strings.Contains(s, "no basic auth credentials") ||
		strings.Contains(s, "authentication required") || strings.Contains(s, "authorization token has expired")
}

// explainPull says what to do about a failed pull.
func (p *Puller) explainPull(ref string, err error) error {
	// The engine names the pull; the host's error already says "pull ref:".
	msg := strings.TrimPrefix(err.Error(), "pull "+ref+": ")
	s := strings.ToLower(msg)
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err
	case strings.Contains(s, "not authorized to perform") || strings.Contains(s, "denied:"):
		return &Error{Kind: ErrAccessDenied, Problem: "the registry denied the pull: " + msg,
			Advice: "allow ecr:BatchGetImage, ecr:GetDownloadUrlForLayer and ecr:BatchCheckLayerAvailability on the repository for this principal", Err: err}
	case refused(err):
		return &Error{Kind: ErrExpiredCredentials, Problem: "the registry refused the login token: " + msg,
			Advice: "check that the token's account owns the registry in the reference, and that the credentials are current", Err: err}
	case strings.Contains(s, "manifest unknown") || strings.Contains(s, "not found"):
		return &Error{Kind: ErrImageNotFound, Problem: "the registry has no such image: " + msg,
			Advice: "it may have been deleted (lifecycle policy?); `cutover images SERVICE` lists what there is", Err: err}
	}
	return err
}
