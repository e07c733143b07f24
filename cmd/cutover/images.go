package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/engine"
)

// imageRow is an image of the service's repository, marked with whether it
// runs now or ran before.
type imageRow struct {
	engine.Image
	Running bool `json:"running"`
	RanFrom bool `json:"ran_before"`
}

func newImagesCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "images SERVICE",
		Short: "List the candidate images of a service, newest first",
		Long: `images lists the images of SERVICE's repository, newest first (or by
semantic version), marking the version that runs now (●) and versions that
ran before (○). The repository is on the Docker host, or in AWS ECR for a
service whose source is ecr (with scan status where ECR has one).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := openService(ctx, cmd, args[0])
			if err != nil {
				return err
			}
			defer s.Close()
			rows, err := s.imageRows(ctx)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			now := time.Now()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "\tTAGS\tDIGEST\tCREATED\tSIZE\tSCAN")
			for _, r := range rows {
				mark := " "
				if r.Running {
					mark = "●"
				} else if r.RanFrom {
					mark = "○"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, strings.Join(r.Tags, ", "), engine.ShortDigest(r.Digest), engine.Ago(now, r.Pushed), engine.HumanBytes(r.Size), r.Scan)
			}
			if len(rows) == 0 {
				where := "on the Docker host"
				if s.svc.Source.Type == config.SourceECR {
					where = "in ECR repository " + s.svc.Source.Repository
				}
				fmt.Fprintf(tw, "\t(no images of %s %s)\n", s.svc.Image, where)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// imageRows lists the service's images, newest first, marked with what
// runs now (by digest) and what ran before (from the journal).
func (s *service) imageRows(ctx context.Context) ([]imageRow, error) {
	reg, repo, err := s.registry(ctx)
	if err != nil {
		return nil, err
	}
	imgs, err := reg.ListImages(ctx, repo)
	if err != nil {
		return nil, err
	}
	return s.imageMarks(ctx).rows(imgs), nil
}

// imagePages is imageRows delivered as the registry answers, page by page,
// so a large ECR repository shows its first images before the rest arrive.
// Pages are not in order with each other; the caller merges them.
func (s *service) imagePages(ctx context.Context, page func([]imageRow)) error {
	reg, err := s.ecrRegistry(ctx)
	if err != nil {
		return err
	}
	marks := s.imageMarks(ctx)
	if reg == nil {
		imgs, err := s.localImages().ListImages(ctx, s.svc.Image)
		if err != nil {
			return err
		}
		page(marks.rows(imgs))
		return nil
	}
	return reg.ListImagesPages(ctx, s.svc.Source.Repository, func(imgs []engine.Image) error {
		page(marks.rows(imgs))
		return nil
	})
}

// imageMarks are the digests running now and the versions and digests that
// ran before.
type imageMarks struct{ running, ran map[string]bool }

func (s *service) imageMarks(ctx context.Context) imageMarks {
	m := imageMarks{running: map[string]bool{}, ran: map[string]bool{}}
	if insts, err := s.instances().Instances(ctx, s.svc.Name); err == nil {
		for _, in := range insts {
			m.running[in.Digest] = true
		}
	}
	if recs, err := s.journal.Releases(ctx, s.svc.Name, 200); err == nil {
		for _, r := range recs {
			if r.State == engine.ReleaseSucceeded {
				m.ran[r.To.Version] = true
				if r.To.Digest != "" {
					m.ran[r.To.Digest] = true
				}
			}
			for _, f := range r.From {
				m.ran[f.Version] = true
			}
		}
	}
	return m
}

func (m imageMarks) rows(imgs []engine.Image) []imageRow {
	rows := make([]imageRow, 0, len(imgs))
	for _, img := range imgs {
		row := imageRow{Image: img, Running: m.running[img.Digest], RanFrom: m.ran[img.Digest]}
		for _, t := range img.Tags {
			row.RanFrom = row.RanFrom || m.ran[t]
		}
		rows = append(rows, row)
	}
	return rows
}
