package engine

import (
	"cmp"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// CompareVersions orders two image tags: the semantic-version way where both
// look like versions ("v1.10.0" > "1.9.2", "1.2.0" > "1.2.0-rc1",
// "1.2.0-rc.10" > "1.2.0-rc.9"), any version above a tag that is not one
// ("latest"), and as text otherwise. It returns -1, 0 or +1 like
// strings.Compare; sort with CompareVersions(b, a) for highest first.
func CompareVersions(a, b string) int {
	av, aok := parseVersion(a)
	bv, bok := parseVersion(b)
	switch {
	case aok && bok:
		if c := av.compare(bv); c != 0 {
			return c
		}
	case aok:
		return 1
	case bok:
		return -1
	}
	return strings.Compare(a, b)
}

// CompareImages orders images the way every image list shows them, first
// first: newest pushed first or, with bySemver (a service's source.semver),
// highest version tag first with images that have none after them. Ties fall
// to the push time, then the highest first tag (registries such as ECR keep
// whole seconds), then the digest, so the order is total and lists sorted
// apart merge into the same order.
func CompareImages(a, b Image, bySemver bool) int {
	if bySemver {
		av, aok := highestVersion(a.Tags)
		bv, bok := highestVersion(b.Tags)
		switch {
		case aok && !bok:
			return -1
		case !aok && bok:
			return 1
		case aok && bok:
			if c := bv.compare(av); c != 0 {
				return c
			}
		}
	}
	if c := b.Pushed.Compare(a.Pushed); c != 0 {
		return c
	}
	if c := CompareVersions(firstTag(b.Tags), firstTag(a.Tags)); c != 0 {
		return c
	}
	return strings.Compare(a.Digest, b.Digest)
}

// SortImages sorts images with CompareImages.
func SortImages(imgs []Image, bySemver bool) {
	slices.SortFunc(imgs, func(a, b Image) int { return CompareImages(a, b, bySemver) })
}

func firstTag(tags []string) string {
	if len(tags) == 0 {
		return ""
	}
	return tags[0]
}

// version is a parsed semantic version: "v1.2.3-rc.1+build".
type version struct {
	nums []int
	pre  []string // pre-release identifiers; none for a release
}

// parseVersion reads "1", "1.2", "v1.2.3", "1.2.3-rc.1+meta".
func parseVersion(tag string) (version, bool) {
	s := strings.TrimPrefix(tag, "v")
	s, _, _ = strings.Cut(s, "+")
	s, pre, hasPre := strings.Cut(s, "-")
	var v version
	for _, part := range strings.Split(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return version{}, false
		}
		v.nums = append(v.nums, n)
	}
	if hasPre {
		v.pre = strings.Split(pre, ".")
	}
	return v, true
}

// compare orders versions the semver way: numbers (a missing one is 0),
// then a release above its pre-releases, then pre-release identifiers one
// by one.
func (a version) compare(b version) int {
	for i := range max(len(a.nums), len(b.nums)) {
		if c := cmp.Compare(numAt(a.nums, i), numAt(b.nums, i)); c != 0 {
			return c
		}
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) > 0:
		return 1
	case len(a.pre) > 0 && len(b.pre) == 0:
		return -1
	}
	for i := range min(len(a.pre), len(b.pre)) {
		if c := comparePre(a.pre[i], b.pre[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.pre), len(b.pre))
}

// comparePre orders pre-release identifiers: numbers numerically and below
// words, words as text.
func comparePre(a, b string) int {
	an, aerr := strconv.Atoi(a)
	bn, berr := strconv.Atoi(b)
	switch {
	case aerr == nil && berr == nil:
		return cmp.Compare(an, bn)
	case aerr == nil:
		return -1
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

func numAt(s []int, i int) int {
	if i < len(s) {
		return s[i]
	}
	return 0
}

// highestVersion is the highest version among tags.
func highestVersion(tags []string) (version, bool) {
	var best version
	found := false
	for _, t := range tags {
		if v, ok := parseVersion(t); ok && (!found || v.compare(best) > 0) {
			best, found = v, true
		}
	}
	return best, found
}

// FilterTags keeps the tags of img that match re (nil keeps them all), and
// says whether any is left: an image none of whose tags passes a
// service's tag_filter is not a candidate.
func FilterTags(img Image, re *regexp.Regexp) (Image, bool) {
	if re == nil {
		return img, len(img.Tags) > 0
	}
	var tags []string
	for _, t := range img.Tags {
		if re.MatchString(t) {
			tags = append(tags, t)
		}
	}
	img.Tags = tags
	return img, len(tags) > 0
}
