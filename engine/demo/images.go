package demo

import (
	"archive/tar"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/docker"
)

// Repo is the repository the demo images are tagged into.
const Repo = "cutover-demo"

// LabelDemo marks every demo image, so they can be found and removed.
const LabelDemo = "cutover.demo"

// Variant is one demo image: a tag and the app knobs baked into it.
type Variant struct {
	Tag  string            // image tag, also the app's DEMO_VERSION
	Env  map[string]string // knobs (DEMO_CRASH, DEMO_ERROR_RATE, ...)
	Note string            // what the variant is for, shown to operators
	// HealthCheck adds a Docker HEALTHCHECK running `cutover demo-app probe`
	// every second (scratch has no shell or curl). None of the standard variants has one: Docker reports
	// "starting" until the first probe, which would slow every launch.
	HealthCheck bool
}

// Variants returns the standard demo images: two good versions, and one
// each that crashes, fails its health check, or starts answering errors.
func Variants() []Variant {
	return []Variant{
		{Tag: "1.0.0", Note: "good"},
		{Tag: "1.1.0", Note: "good"},
		{Tag: "1.2.0-crash", Env: map[string]string{"DEMO_CRASH": "1"}, Note: "exits with code 3 at start"},
		{Tag: "1.3.0-unhealthy", Env: map[string]string{"DEMO_FAIL_HEALTH": "1"}, Note: "/healthz answers 503"},
		{Tag: "1.4.0-errors", Env: map[string]string{"DEMO_ERROR_RATE": "0.3", "DEMO_ERRORS_AFTER": "20"},
			Note: "answers 30% of requests with 500 after serving 20"},
	}
}

// ImageClient is the part of the Docker client the builder needs;
// *client.Client from github.com/docker/docker/client satisfies it.
type ImageClient interface {
	ImageImport(ctx context.Context, source image.ImportSource, ref string, options image.ImportOptions) (io.ReadCloser, error)
	ImageList(ctx context.Context, options image.ListOptions) ([]image.Summary, error)
	ImageRemove(ctx context.Context, imageID string, options image.RemoveOptions) ([]image.DeleteResponse, error)
}

// BuildImages makes one FROM-scratch image per variant, tagged repo:tag,
// around the cutover binary at exe (empty means this executable), which
// must be static. Every image gets LabelDemo=1 plus labels. It returns the
// image reference of each variant by tag.
//
// The images are imported (the API behind `docker import --change`), not
// built from a Dockerfile: the legacy builder runs an intermediate
// container for every ENV, LABEL or ENTRYPOINT line, about a second each
// on fuse-overlayfs, so five variants took 43 s to build and take 0.6 s to
// import. The result is the same image a Dockerfile would make (see
// Changes); the one layer is byte-identical across variants, so the
// binary is stored once.
func BuildImages(ctx context.Context, cli ImageClient, exe, repo string, labels map[string]string, variants []Variant) (map[string]string, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("build demo images: find this executable: %w", err)
		}
	}
	if repo == "" {
		repo = Repo
	}
	if err := CheckStatic(exe); err != nil {
		return nil, fmt.Errorf("build demo images: %w", err)
	}
	refs := make(map[string]string, len(variants))
	for _, v := range variants {
		ref := repo + ":" + v.Tag
		if err := importOne(ctx, cli, exe, ref, Changes(v, labels)); err != nil {
			return refs, fmt.Errorf("build demo image %s: %w", ref, err)
		}
		refs[v.Tag] = ref
	}
	return refs, nil
}

// CheckStatic refuses a binary that cannot run in a FROM-scratch image:
// not a Linux ELF, or dynamically linked (it names an interpreter).
func CheckStatic(exe string) error {
	f, err := elf.Open(exe)
	if err != nil {
		return fmt.Errorf("%s is not a Linux executable (%v); the demo images need a linux build of cutover", exe, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked and cannot run in a FROM scratch image: build cutover with CGO_ENABLED=0 to use the demo", exe)
		}
	}
	return nil
}

// Changes returns the Dockerfile instructions that make a variant's image
// config on top of its one layer (/cutover): the same lines a Dockerfile
// `FROM scratch` + `COPY cutover /cutover` would continue with.
func Changes(v Variant, labels map[string]string) []string {
	env := map[string]string{"DEMO_VERSION": v.Tag}
	maps.Copy(env, v.Env)
	all := map[string]string{LabelDemo: "1"}
	maps.Copy(all, labels)
	changes := []string{
		"ENV " + pairs(env),
		fmt.Sprintf("EXPOSE %d", DefaultPort),
		"LABEL " + pairs(all),
	}
	if v.HealthCheck {
		changes = append(changes, `HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["/cutover","demo-app","probe"]`)
	}
	return append(changes, `ENTRYPOINT ["/cutover","demo-app"]`)
}

// pairs renders k="v" pairs in key order. A JSON string is also a valid
// Dockerfile double-quoted string, so any value is safe.
func pairs(m map[string]string) string {
	quote := func(s string) string { q, _ := json.Marshal(s); return string(q) }
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, quote(k)+"="+quote(m[k]))
	}
	return strings.Join(parts, " ")
}

func importOne(ctx context.Context, cli ImageClient, exe, ref string, changes []string) error {
	// Stream the layer through a pipe: the binary is tens of MB and need
	// not sit in memory once per variant.
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeLayer(pw, exe)) }()
	defer pr.Close()
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: pr, SourceName: "-"}, ref, image.ImportOptions{
		Changes: changes,
		Message: "cutover demo image",
	})
	if err != nil {
		return err
	}
	defer rc.Close()
	return docker.ReadStream(rc, nil)
}

// writeLayer writes the image's only layer: /cutover. Fixed owner and
// times make the layer identical for every variant, so it is stored once.
func writeLayer(w io.Writer, exe string) error {
	f, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	hdr := &tar.Header{Name: "cutover", Mode: 0o755, Size: st.Size(), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return err
	}
	return tw.Close()
}

// RemoveImages removes every demo image (LabelDemo=1) that also carries
// all of labels, with all its tags. It returns how many it removed.
func RemoveImages(ctx context.Context, cli ImageClient, labels map[string]string) (int, error) {
	return removeImages(ctx, cli, labels, func(image.Summary) bool { return true })
}

// RemoveRepo removes the demo images tagged in repo (cutover-demo:1.1.0...),
// and demo images left untagged (a rebuild untags the images it replaces);
// demo images tagged elsewhere, such as those of tests running beside, are
// left alone. It returns how many it removed.
func RemoveRepo(ctx context.Context, cli ImageClient, repo string) (int, error) {
	return removeImages(ctx, cli, nil, func(img image.Summary) bool {
		for _, t := range img.RepoTags {
			if strings.HasPrefix(t, repo+":") {
				return true
			}
		}
		return len(img.RepoTags) == 0
	})
}

// removeImages removes the demo images carrying all of labels that pick
// chooses, with all their tags.
func removeImages(ctx context.Context, cli ImageClient, labels map[string]string, pick func(image.Summary) bool) (int, error) {
	f := filters.NewArgs(filters.Arg("label", LabelDemo+"=1"))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	imgs, err := cli.ImageList(ctx, image.ListOptions{Filters: f})
	if err != nil {
		return 0, fmt.Errorf("remove demo images: list: %w", err)
	}
	var errs []error
	n := 0
	for _, img := range imgs {
		if !pick(img) {
			continue
		}
		// Force removes every tag of the image at once; a running container
		// of it still blocks removal, which is reported.
		if _, err := cli.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove demo image %s %v: %w", engine.ShortDigest(img.ID), img.RepoTags, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
