package ecr

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"

	"github.com/cutover/cutover/engine"
)

// PageSize is how many images one DescribeImages call asks for: ECR's
// maximum, so a repository of 5,000 images takes five calls.
const PageSize = 1000

// ListImages lists repo's images (the configured repository if repo is
// empty), newest first or by semantic version, with the tag filter applied
// and untagged images left out unless the Config asks for them.
func (r *Registry) ListImages(ctx context.Context, repo string) ([]engine.Image, error) {
	var all []engine.Image
	err := r.ListImagesPages(ctx, repo, func(page []engine.Image) error {
		all = append(all, page...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Sort(all)
	return all, nil
}

// ListImagesPages lists repo like ListImages but hands each page to fn as
// it arrives, so a console can show the first images while the rest load.
// Each page is sorted within itself; the order across pages is only known
// at the end (Sort the collected pages, or use ListImages). An error from
// fn stops the listing and is returned as is.
func (r *Registry) ListImagesPages(ctx context.Context, repo string, fn func(page []engine.Image) error) error {
	repo = r.repo(repo)
	in := &ecr.DescribeImagesInput{RepositoryName: aws.String(repo), RegistryId: r.registryID()}
	if !r.cfg.IncludeUntagged {
		in.Filter = &types.DescribeImagesFilter{TagStatus: types.TagStatusTagged}
	}
	pages := ecr.NewDescribeImagesPaginator(r.api, in, func(o *ecr.DescribeImagesPaginatorOptions) {
		o.Limit = PageSize
	})
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return r.explain("list images of "+repo, repo, err)
		}
		page := make([]engine.Image, 0, len(out.ImageDetails))
		for _, d := range out.ImageDetails {
			if img, ok := r.candidate(repo, d); ok {
				page = append(page, img)
			}
		}
		if len(page) == 0 {
			continue
		}
		r.Sort(page)
		if err := fn(page); err != nil {
			return err
		}
	}
	return nil
}

// Resolve finds the image that ref (a tag, or a sha256: digest) names in
// repo. The tag filter does not apply: an explicit choice is honoured.
func (r *Registry) Resolve(ctx context.Context, repo, ref string) (engine.Image, error) {
	repo = r.repo(repo)
	id := types.ImageIdentifier{ImageTag: aws.String(ref)}
	if strings.HasPrefix(ref, "sha256:") {
		id = types.ImageIdentifier{ImageDigest: aws.String(ref)}
	}
	op := fmt.Sprintf("find %s in %s", ref, repo)
	out, err := r.api.DescribeImages(ctx, &ecr.DescribeImagesInput{
		RepositoryName: aws.String(repo), RegistryId: r.registryID(), ImageIds: []types.ImageIdentifier{id}})
	if err != nil {
		return engine.Image{}, r.explain(op, repo, err)
	}
	if len(out.ImageDetails) == 0 {
		return engine.Image{}, r.explain(op, repo, &types.ImageNotFoundException{Message: aws.String("no image " + ref)})
	}
	return imageOf(repo, out.ImageDetails[0], out.ImageDetails[0].ImageTags), nil
}

// candidate turns an ECR image into a listing entry, or says it is hidden:
// untagged (unless asked for), or none of its tags passes the filter.
func (r *Registry) candidate(repo string, d types.ImageDetail) (engine.Image, bool) {
	if len(d.ImageTags) == 0 {
		return imageOf(repo, d, nil), r.cfg.IncludeUntagged
	}
	img, ok := engine.FilterTags(engine.Image{Tags: d.ImageTags}, r.filter)
	if !ok {
		return engine.Image{}, false
	}
	return imageOf(repo, d, img.Tags), true
}

func imageOf(repo string, d types.ImageDetail, tags []string) engine.Image {
	tags = slices.Clone(tags)
	slices.SortFunc(tags, func(a, b string) int { return engine.CompareVersions(b, a) })
	return engine.Image{
		Repository: repo,
		Tags:       tags,
		Digest:     aws.ToString(d.ImageDigest),
		Pushed:     aws.ToTime(d.ImagePushedAt),
		Size:       aws.ToInt64(d.ImageSizeInBytes),
		Scan:       scanSummary(d),
	}
}

// severities in the order a reader cares about them.
var severities = []types.FindingSeverity{
	types.FindingSeverityCritical, types.FindingSeverityHigh, types.FindingSeverityMedium,
	types.FindingSeverityLow, types.FindingSeverityInformational, types.FindingSeverityUndefined,
}

// scanSummary renders ECR's scan state: "complete: 2 critical, 5 high",
// "complete: no findings", "in progress", "failed: reason"; empty when
// the image was never scanned.
func scanSummary(d types.ImageDetail) string {
	if d.ImageScanStatus == nil || d.ImageScanStatus.Status == "" {
		return ""
	}
	status := strings.ToLower(strings.ReplaceAll(string(d.ImageScanStatus.Status), "_", " "))
	if d.ImageScanFindingsSummary != nil && (status == "complete" || status == "active") {
		var parts []string
		for _, s := range severities {
			if n := d.ImageScanFindingsSummary.FindingSeverityCounts[string(s)]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, strings.ToLower(string(s))))
			}
		}
		if len(parts) == 0 {
			return status + ": no findings"
		}
		return status + ": " + strings.Join(parts, ", ")
	}
	if desc := aws.ToString(d.ImageScanStatus.Description); desc != "" && status != "complete" {
		return status + ": " + desc
	}
	return status
}
