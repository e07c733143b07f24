package ecr

import (
	"slices"
	"strconv"
	"strings"

	"github.com/cutover/cutover/engine"
)

// Sort orders images the way the Config asks: by semantic version of their
// highest tag when Semver is set, newest first otherwise.
func (r *Registry) Sort(imgs []engine.Image) { SortImages(imgs, r.cfg.Semver) }

// SortImages orders images newest first, or by semantic version (highest
// first, images without a version tag after, newest first). Ties fall to
// the push time, then the highest tag, then the digest, so the order is
// total even though ECR (and moto) record push times in whole seconds.
func SortImages(imgs []engine.Image, semver bool) {
	slices.SortFunc(imgs, func(a, b engine.Image) int {
		if semver {
			av, aok := highestVersion(a.Tags)
			bv, bok := highestVersion(b.Tags)
			switch {
			case aok && !bok:
				return -1
			case !aok && bok:
				return 1
			case aok && bok:
				if c := compareVersions(bv, av); c != 0 {
					return c
				}
			}
		}
		if c := b.Pushed.Compare(a.Pushed); c != 0 {
			return c
		}
		if c := compareTags(first(b.Tags), first(a.Tags)); c != 0 {
			return c
		}
		return strings.Compare(a.Digest, b.Digest)
	})
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
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

// compareVersions orders versions the semver way: numbers, then a release
// above its pre-releases, then pre-release identifiers one by one.
func compareVersions(a, b version) int {
	for i := range max(len(a.nums), len(b.nums)) {
		if c := cmpInt(at(a.nums, i), at(b.nums, i)); c != 0 {
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
	return cmpInt(len(a.pre), len(b.pre))
}

func comparePre(a, b string) int {
	an, aerr := strconv.Atoi(a)
	bn, berr := strconv.Atoi(b)
	switch {
	case aerr == nil && berr == nil:
		return cmpInt(an, bn)
	case aerr == nil:
		return -1 // numeric identifiers sort below alphanumeric ones
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

func at(s []int, i int) int {
	if i < len(s) {
		return s[i]
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareTags orders tags by version where both look like versions,
// versions above other tags, and as text otherwise.
func compareTags(a, b string) int {
	av, aok := parseVersion(a)
	bv, bok := parseVersion(b)
	switch {
	case aok && bok:
		if c := compareVersions(av, bv); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	case aok:
		return 1
	case bok:
		return -1
	}
	return strings.Compare(a, b)
}

// highestVersion is the highest version among tags.
func highestVersion(tags []string) (version, bool) {
	var best version
	found := false
	for _, t := range tags {
		if v, ok := parseVersion(t); ok && (!found || compareVersions(v, best) > 0) {
			best, found = v, true
		}
	}
	return best, found
}
