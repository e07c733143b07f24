package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// newDemoTrafficCmd sends light, steady traffic to the demo's router so its
// figures, sparklines and analysis gates have something to measure.
func newDemoTrafficCmd() *cobra.Command {
	var rps int
	cmd := &cobra.Command{
		Use:    "demo-traffic URL",
		Short:  "Send steady background traffic to URL (used by cutover demo)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rps <= 0 || rps > 1000 {
				return withCode(exitUsage, fmt.Errorf("--rps %d: want 1..1000", rps))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return sendTraffic(ctx, args[0], rps, cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&rps, "rps", 20, "requests per second")
	return cmd
}

// sendTraffic sends rps requests per second (every fifth a POST) until ctx
// ends, and prints a line of counts every 10 seconds.
func sendTraffic(ctx context.Context, url string, rps int, out io.Writer) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	report := time.NewTicker(10 * time.Second)
	defer report.Stop()
	type result struct{ class int }
	results := make(chan result, 1024)
	counts := map[int]int{}
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case r := <-results:
			counts[r.class]++
		case <-report.C:
			fmt.Fprintf(out, "%s 2xx=%d 5xx=%d other=%d errors=%d\n", time.Now().Format(time.RFC3339),
				counts[2], counts[5], counts[3]+counts[4], counts[0])
			clear(counts)
		case <-tick.C:
			go func(post bool) {
				var resp *http.Response
				var err error
				if post {
					resp, err = client.Post(url, "text/plain", strings.NewReader("demo traffic"))
				} else {
					resp, err = client.Get(url)
				}
				class := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					class = resp.StatusCode / 100
				}
				select {
				case results <- result{class}:
				default:
				}
			}(n%5 == 0)
		}
	}
}
