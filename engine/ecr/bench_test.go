package ecr_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/ecr"
	"github.com/cutover/cutover/engine/ecr/ecrtest"
)

// benchImages is how many images the listing benchmark puts in moto.
const benchImages = 5000

// seeded5000 fills moto once per benchmark run (about 30 s): b.N rounds
// and repeated benchmark functions reuse it.
var seeded5000 struct {
	once     sync.Once
	endpoint string
	took     time.Duration
}

func BenchmarkECRListing5000(b *testing.B) {
	ep := moto5000(b)
	reg, err := ecr.New(context.Background(), ecr.Config{Repository: "big", Endpoint: ep})
	if err != nil {
		b.Fatal(err)
	}
	var first, whole time.Duration
	for b.Loop() {
		start := time.Now()
		var all []engine.Image
		err := reg.ListImagesPages(context.Background(), "", func(page []engine.Image) error {
			if len(all) == 0 {
				first += time.Since(start)
			}
			all = append(all, page...)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(all) != benchImages {
			b.Fatalf("listed %d images, want %d", len(all), benchImages)
		}
		reg.Sort(all)
		whole += time.Since(start)
	}
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms-first-page")
	b.ReportMetric(float64(whole.Milliseconds())/float64(b.N), "ms-whole-list")
	b.Logf("seeding %d images took %s", benchImages, seeded5000.took.Round(time.Second))
}

func moto5000(b *testing.B) string {
	b.Helper()
	seeded5000.once.Do(func() {
		ep := ecrtest.Endpoint(b)
		start := time.Now()
		s := ecrtest.NewSeeder(b, ep, "big")
		var wg sync.WaitGroup
		work := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					s.Push(context.Background(), "big", i, fmt.Sprintf("1.%d.%d", i/100, i%100), fmt.Sprintf("build-%d", i))
				}
			}()
		}
		for i := range benchImages {
			work <- i
		}
		close(work)
		wg.Wait()
		seeded5000.endpoint, seeded5000.took = ep, time.Since(start)
	})
	if seeded5000.endpoint == "" {
		b.Fatal("seeding moto failed")
	}
	ecrtest.Env(b)
	return seeded5000.endpoint
}
