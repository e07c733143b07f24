package engine_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
)

func TestCompareVersionsOrdersTagsTheSemverWay(t *testing.T) {
	tags := []string{"1.9.2", "latest", "v1.10.0", "1.2.0-rc1", "1.2.0", "1.2.0-crash", "2", "1.2.0-rc.10", "1.2.0-rc.9", "1.2.0+build7"}
	slices.SortFunc(tags, func(a, b string) int { return engine.CompareVersions(b, a) })
	want := []string{"2", "v1.10.0", "1.9.2", "1.2.0+build7", "1.2.0", "1.2.0-rc1", "1.2.0-rc.10", "1.2.0-rc.9", "1.2.0-crash", "latest"}
	if !slices.Equal(tags, want) {
		t.Errorf("highest first = %q, want %q", tags, want)
	}
}

func TestCompareImagesNewestFirstThenHighestTag(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	img := func(tag string, pushed time.Time) engine.Image {
		return engine.Image{Tags: []string{tag}, Digest: "sha256:" + tag, Pushed: pushed}
	}
	imgs := []engine.Image{img("1.2.0", at.Add(-time.Second)), img("1.9.0", at), img("2.0.0", at.Add(time.Second)), img("1.10.0", at),
		img("1.2.0-rc1", at.Add(-time.Second))}
	engine.SortImages(imgs, false)
	if got := tagsOf(imgs); got != "2.0.0 1.10.0 1.9.0 1.2.0 1.2.0-rc1" {
		t.Errorf("newest first = %s", got)
	}
	// By version, a release comes above its release candidates whatever
	// was pushed last, and images with no version tag come last.
	imgs = []engine.Image{img("1.2.0-rc1", at), img("latest", at.Add(time.Hour)), img("1.2.0", at.Add(-time.Hour)), img("1.10.0", at.Add(-2*time.Hour))}
	engine.SortImages(imgs, true)
	if got := tagsOf(imgs); got != "1.10.0 1.2.0 1.2.0-rc1 latest" {
		t.Errorf("by version = %s", got)
	}
}

func tagsOf(imgs []engine.Image) string {
	var out []string
	for _, i := range imgs {
		out = append(out, i.Tags[0])
	}
	return strings.Join(out, " ")
}
