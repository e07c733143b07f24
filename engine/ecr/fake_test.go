package ecr_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/ecr"
)

// pagedAPI is ECR's DescribeImages over pages of fixed images, honouring
// MaxResults and NextToken as ECR does (moto ignores both).
type pagedAPI struct {
	images   []types.ImageDetail
	calls    []*awsecr.DescribeImagesInput
	gate     chan struct{} // when set, every page after the first waits for it
	err      error
	tokens   []types.AuthorizationData
	tokenErr error
}

func (a *pagedAPI) DescribeImages(ctx context.Context, in *awsecr.DescribeImagesInput, _ ...func(*awsecr.Options)) (*awsecr.DescribeImagesOutput, error) {
	a.calls = append(a.calls, in)
	if a.err != nil {
		return nil, a.err
	}
	start := 0
	if in.NextToken != nil {
		fmt.Sscanf(*in.NextToken, "page-%d", &start)
		if a.gate != nil {
			select {
			case <-a.gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	n := int(aws.ToInt32(in.MaxResults))
	if n == 0 {
		n = 100
	}
	end := min(start+n, len(a.images))
	out := &awsecr.DescribeImagesOutput{ImageDetails: a.images[start:end]}
	if end < len(a.images) {
		out.NextToken = aws.String(fmt.Sprintf("page-%d", end))
	}
	return out, nil
}

func (a *pagedAPI) GetAuthorizationToken(ctx context.Context, in *awsecr.GetAuthorizationTokenInput, _ ...func(*awsecr.Options)) (*awsecr.GetAuthorizationTokenOutput, error) {
	if a.tokenErr != nil {
		return nil, a.tokenErr
	}
	return &awsecr.GetAuthorizationTokenOutput{AuthorizationData: a.tokens}, nil
}

func detail(i int, tags ...string) types.ImageDetail {
	return types.ImageDetail{
		ImageDigest:      aws.String(fmt.Sprintf("sha256:%064d", i)),
		ImageTags:        tags,
		ImagePushedAt:    aws.Time(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)),
		ImageSizeInBytes: aws.Int64(int64(1000 + i)),
	}
}

func TestListingFollowsEveryPageAndStreamsThemInOrder(t *testing.T) {
	api := &pagedAPI{gate: make(chan struct{})}
	for i := range 2500 {
		api.images = append(api.images, detail(i, fmt.Sprintf("1.0.%d", i)))
	}
	reg, err := ecr.NewWithAPI(api, ecr.Config{Repository: "web"}, "eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	var pages [][]engine.Image
	err = reg.ListImagesPages(context.Background(), "", func(page []engine.Image) error {
		pages = append(pages, page)
		if len(pages) == 1 {
			// The first page is here while the second is still held back.
			if len(api.calls) != 1 {
				t.Errorf("first page delivered after %d calls, want 1", len(api.calls))
			}
			close(api.gate)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 3 || len(pages[0]) != ecr.PageSize || len(pages[2]) != 500 {
		t.Fatalf("got %d pages, want 3 of 1000, 1000, 500", len(pages))
	}
	for i, in := range api.calls {
		if aws.ToInt32(in.MaxResults) != ecr.PageSize || aws.ToString(in.RepositoryName) != "web" {
			t.Errorf("call %d asked for %d results of %q", i, aws.ToInt32(in.MaxResults), aws.ToString(in.RepositoryName))
		}
		if in.Filter == nil || in.Filter.TagStatus != types.TagStatusTagged {
			t.Errorf("call %d does not ask ECR for tagged images only", i)
		}
	}
	if p := pages[0]; p[0].Tags[0] != "1.0.999" || p[len(p)-1].Tags[0] != "1.0.0" {
		t.Errorf("first page runs %s..%s, want newest first within the page", p[0].Tags[0], p[len(p)-1].Tags[0])
	}

	all, err := reg.ListImages(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2500 || all[0].Tags[0] != "1.0.2499" || all[2499].Tags[0] != "1.0.0" {
		t.Errorf("whole list: %d images from %v to %v, want 2500 newest first", len(all), all[0].Tags, all[len(all)-1].Tags)
	}
}

func TestACallbackErrorStopsTheListing(t *testing.T) {
	api := &pagedAPI{}
	for i := range 3000 {
		api.images = append(api.images, detail(i, fmt.Sprint("t", i)))
	}
	reg, _ := ecr.NewWithAPI(api, ecr.Config{Repository: "web"}, "eu-west-1")
	stop := errors.New("enough")
	err := reg.ListImagesPages(context.Background(), "", func([]engine.Image) error { return stop })
	if !errors.Is(err, stop) || len(api.calls) != 1 {
		t.Errorf("err %v after %d calls, want the callback's error after one", err, len(api.calls))
	}
}

func TestScanStatusAndFindingCountsAreShown(t *testing.T) {
	scanned := detail(1, "1.0.1")
	scanned.ImageScanStatus = &types.ImageScanStatus{Status: types.ScanStatusComplete}
	scanned.ImageScanFindingsSummary = &types.ImageScanFindingsSummary{
		FindingSeverityCounts: map[string]int32{"HIGH": 5, "CRITICAL": 2, "LOW": 1}}
	clean := detail(2, "1.0.2")
	clean.ImageScanStatus = &types.ImageScanStatus{Status: types.ScanStatusComplete}
	clean.ImageScanFindingsSummary = &types.ImageScanFindingsSummary{}
	failed := detail(3, "1.0.3")
	failed.ImageScanStatus = &types.ImageScanStatus{Status: types.ScanStatusFailed, Description: aws.String("UnsupportedImageError")}
	running := detail(4, "1.0.4")
	running.ImageScanStatus = &types.ImageScanStatus{Status: types.ScanStatusInProgress}
	never := detail(5, "1.0.5")

	api := &pagedAPI{images: []types.ImageDetail{scanned, clean, failed, running, never}}
	reg, _ := ecr.NewWithAPI(api, ecr.Config{Repository: "web"}, "eu-west-1")
	imgs, err := reg.ListImages(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, img := range imgs {
		got[img.Tags[0]] = img.Scan
	}
	want := map[string]string{
		"1.0.1": "complete: 2 critical, 5 high, 1 low",
		"1.0.2": "complete: no findings",
		"1.0.3": "failed: UnsupportedImageError",
		"1.0.4": "in progress",
		"1.0.5": "",
	}
	for tag, w := range want {
		if got[tag] != w {
			t.Errorf("scan of %s = %q, want %q", tag, got[tag], w)
		}
	}
}

func apiError(op, code, msg string) error {
	return &smithy.OperationError{ServiceID: "ECR", OperationName: op,
		Err: &smithy.GenericAPIError{Code: code, Message: msg}}
}

func TestAPIErrorsSayWhatIsWrongAndWhatToDo(t *testing.T) {
	denied := "User: arn:aws:iam::111122223333:user/ci is not authorized to perform: ecr:DescribeImages on resource: arn:aws:ecr:eu-west-1:111122223333:repository/web"
	for _, tc := range []struct {
		err  error
		kind ecr.ErrorKind
		want []string
	}{
		{apiError("DescribeImages", "AccessDeniedException", denied), ecr.ErrAccessDenied,
			[]string{"ecr:DescribeImages", "arn:aws:ecr:eu-west-1:111122223333:repository/web", "user/ci", "allow"}},
		{apiError("DescribeImages", "ExpiredTokenException", "The security token included in the request is expired"), ecr.ErrExpiredCredentials,
			[]string{"expired", "aws sso login"}},
		{apiError("DescribeImages", "UnrecognizedClientException", "The security token included in the request is invalid."), ecr.ErrBadCredentials,
			[]string{"rejected", "access key"}},
		{apiError("DescribeImages", "ThrottlingException", "Rate exceeded"), ecr.ErrThrottled,
			[]string{"throttling", "AWS_RETRY_MODE"}},
	} {
		api := &pagedAPI{err: tc.err}
		reg, _ := ecr.NewWithAPI(api, ecr.Config{Repository: "web", RegistryID: "111122223333"}, "eu-west-1")
		_, err := reg.ListImages(context.Background(), "")
		if !ecr.IsKind(err, tc.kind) {
			t.Errorf("%v: got %v, want kind %s", tc.err, err, tc.kind)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("message %q lacks %q", err, w)
			}
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("%v does not wrap the SDK's error", err)
		}
	}

	api := &pagedAPI{tokenErr: apiError("GetAuthorizationToken", "AccessDeniedException", "not authorized to perform: ecr:GetAuthorizationToken")}
	reg, _ := ecr.NewWithAPI(api, ecr.Config{Repository: "web"}, "eu-west-1")
	_, err := reg.Auth(context.Background())
	if !ecr.IsKind(err, ecr.ErrAccessDenied) || !strings.Contains(err.Error(), `allow ecr:GetAuthorizationToken on "*"`) {
		t.Errorf("token denied: %v", err)
	}
}

func TestLoginTokenIsCachedUntilShortlyBeforeItExpires(t *testing.T) {
	api := &pagedAPI{tokens: []types.AuthorizationData{{
		AuthorizationToken: aws.String("QVdTOnNlY3JldA=="), // AWS:secret
		ProxyEndpoint:      aws.String("https://111122223333.dkr.ecr.eu-west-1.amazonaws.com"),
		ExpiresAt:          aws.Time(time.Now().Add(12 * time.Hour)),
	}}}
	reg, _ := ecr.NewWithAPI(api, ecr.Config{Repository: "web"}, "eu-west-1")
	a, err := reg.Auth(context.Background())
	if err != nil || a.Username != "AWS" || a.Password != "secret" || a.Registry != "111122223333.dkr.ecr.eu-west-1.amazonaws.com" {
		t.Fatalf("auth %+v, %v", a, err)
	}
	api.tokens[0].AuthorizationToken = aws.String("QVdTOm90aGVy") // AWS:other
	if b, _ := reg.Auth(context.Background()); b.Password != "secret" {
		t.Errorf("a fresh token was not reused: got %q", b.Password)
	}
	reg.ForgetAuth()
	if b, _ := reg.Auth(context.Background()); b.Password != "other" {
		t.Errorf("after ForgetAuth got %q, want a new token", b.Password)
	}
	h, err := a.Header("")
	if err != nil || h == "" || strings.ContainsAny(h, "+/") {
		t.Errorf("header %q (%v): want base64url JSON", h, err)
	}
}
