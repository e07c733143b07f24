package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"github.com/cutover/cutover/engine"
)

// MissingImageError says an image is not on the Docker host. Launch pulls
// nothing, so the operator must pull or build it first.
type MissingImageError struct {
	Ref string
}

func (e *MissingImageError) Error() string {
	return fmt.Sprintf("image %s is not on the Docker host; pull or build it first", e.Ref)
}

// ListImages lists the local images tagged in repo, newest first, one
// entry per image with all its tags in repo. It makes the Docker host's own
// images a Registry.
func (p *Platform) ListImages(ctx context.Context, repo string) ([]engine.Image, error) {
	list, err := p.cli.ImageList(ctx, image.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list images of %s on %s: %w", repo, p.host, err)
	}
	var out []engine.Image
	for _, s := range list {
		var tags []string
		for _, rt := range s.RepoTags {
			if r, tag := splitRef(rt); r == repo && tag != "" {
				tags = append(tags, tag)
			}
		}
		if len(tags) == 0 {
			continue
		}
		slices.SortFunc(tags, func(a, b string) int { return engine.CompareVersions(b, a) })
		out = append(out, engine.Image{
			Repository: repo,
			Tags:       tags,
			Digest:     digestOf(s.ID, s.RepoDigests, repo),
			Pushed:     time.Unix(s.Created, 0),
			Size:       s.Size,
		})
	}
	engine.SortImages(out, false)
	return out, nil
}

// ImageInfo resolves a reference (repo:tag, repo@digest or image ID) to
// the local image it names.
func (p *Platform) ImageInfo(ctx context.Context, ref string) (engine.Image, error) {
	info, err := p.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return engine.Image{}, &MissingImageError{Ref: ref}
	}
	if err != nil {
		return engine.Image{}, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	repo, _ := splitRef(ref)
	if !hasRepo(info.RepoTags, repo) && !hasRepo(info.RepoDigests, repo) {
		// Named by ID (or by a name it no longer has): report it under
		// its first repository. An image pulled by digest (from ECR) has
		// no tag in its repository, only the digest, and keeps that name.
		repo, _ = splitRef(firstOr(info.RepoTags, ""))
	}
	var tags []string
	for _, rt := range info.RepoTags {
		if r, tag := splitRef(rt); r == repo && tag != "" {
			tags = append(tags, tag)
		}
	}
	slices.SortFunc(tags, func(a, b string) int { return engine.CompareVersions(b, a) })
	img := engine.Image{
		Repository: repo,
		Tags:       tags,
		Digest:     digestOf(info.ID, info.RepoDigests, repo),
		Size:       info.Size,
	}
	if t, err := time.Parse(time.RFC3339Nano, info.Created); err == nil {
		img.Pushed = t
	}
	return img, nil
}

// Pinned names ref's image exactly, for another engine that must run the
// same image: repo@digest when it came from a registry (any node can pull
// that), else the local image ID (such an image exists on this host
// only). digest is what instances of it are labelled with, as ImageInfo says.
func (p *Platform) Pinned(ctx context.Context, ref string) (pinned, digest string, err error) {
	info, err := p.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return "", "", &MissingImageError{Ref: ref}
	}
	if err != nil {
		return "", "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	repo, _ := splitRef(ref)
	digest = digestOf(info.ID, info.RepoDigests, repo)
	if digest == info.ID {
		return info.ID, digest, nil
	}
	return repo + "@" + digest, digest, nil
}

// Pull pulls ref onto the host. auth is the base64 X-Registry-Auth value
// (what ECR's token becomes), empty for anonymous pulls. progress, if not
// nil, receives each status line ("<layer>: Downloading ...").
func (p *Platform) Pull(ctx context.Context, ref, auth string, progress func(string)) error {
	rc, err := p.cli.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: auth})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer rc.Close()
	// A failed pull may still answer 200 and tell its failure in the stream.
	if err := ReadStream(rc, progress); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// streamMessage is one line of the JSON message stream Docker answers
// pulls, builds and imports with.
type streamMessage struct {
	ID          string `json:"id"`
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Progress    string `json:"progress"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// ReadStream consumes Docker's JSON message stream (a pull, a build, an
// import), passing each line's text to progress ("<layer>: Downloading
// 12MB/40MB", a build's output), and returns the failure the stream
// reports: a failed pull or import still answers 200 and tells its
// failure inside the stream.
func ReadStream(r io.Reader, progress func(string)) error {
	dec := json.NewDecoder(r)
	for {
		var m streamMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read Docker's messages: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(strings.TrimSpace(m.ErrorDetail.Message))
		}
		if m.Error != "" {
			return errors.New(strings.TrimSpace(m.Error))
		}
		if progress == nil {
			continue
		}
		line := strings.TrimSpace(m.Stream + m.Status)
		if m.ID != "" {
			line = m.ID + ": " + line
		}
		if m.Progress != "" {
			line += " " + m.Progress
		}
		if line != "" {
			progress(line)
		}
	}
}

// digestOf is how an image is identified in labels and listings: the
// registry digest for repo when the image came from a registry (it matches
// what ECR lists), else the local image ID. Launch writes the same value
// into LabelDigest, so instances and listings compare equal.
func digestOf(id string, repoDigests []string, repo string) string {
	for _, rd := range repoDigests {
		if r, d, ok := strings.Cut(rd, "@"); ok && r == repo {
			return d
		}
	}
	return id
}

// splitRef splits "host:5000/name:tag" into "host:5000/name" and "tag";
// a digest reference keeps its digest out of the tag.
func splitRef(ref string) (repo, tag string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ""
	}
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, ""
}

func hasRepo(repoTags []string, repo string) bool {
	for _, rt := range repoTags {
		if r, _ := splitRef(rt); r == repo {
			return true
		}
	}
	return false
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}
