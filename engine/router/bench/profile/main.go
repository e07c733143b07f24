// Command profile runs the router in-process in front of one backend and
// writes a CPU profile of it while something else (wrk) loads it, to see
// where the forwarding path spends its time:
//
//	go run ./engine/router/bench/backend &          # prints "listening ADDR"
//	go run ./engine/router/bench/profile -backend ADDR -d 10s -o cpu.prof &
//	wrk -t2 -c32 -d12s http://ROUTER/                # ROUTER: the address it prints
//	go tool pprof -top cpu.prof
//
// It prints "listening ADDR", profiles for -d once -warmup has passed, then
// prints the requests it routed meanwhile with the heap allocations per
// request, and exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/cutover/cutover/engine"
	"github.com/cutover/cutover/engine/router"
)

func main() {
	backend := flag.String("backend", "", "backend host:port")
	warmup := flag.Duration("warmup", 2*time.Second, "time before the profile starts")
	d := flag.Duration("d", 10*time.Second, "profile duration")
	out := flag.String("o", "cpu.prof", "CPU profile file")
	flag.Parse()
	if *backend == "" {
		log.Fatal("-backend host:port is required")
	}
	s, err := router.New(router.Options{})
	if err != nil {
		log.Fatal(err)
	}
	table := engine.RouteTable{Epoch: 1, Backends: []engine.Backend{{ID: "a", Addr: *backend, Version: "1", Weight: 1}}}
	if err := s.Apply(context.Background(), table); err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening", l.Addr())
	go s.ServeProxy(l)
	time.Sleep(*warmup)

	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	before := s.Stats().Backends[0].Totals.Requests
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatal(err)
	}
	time.Sleep(*d)
	pprof.StopCPUProfile()
	runtime.ReadMemStats(&m1)
	f.Close()
	n := s.Stats().Backends[0].Totals.Requests - before
	if n == 0 {
		log.Fatal("no request was routed while profiling")
	}
	fmt.Printf("%d requests in %s (%.0f/s); %.2f heap allocations and %.0f bytes per request; %d GCs; profile in %s\n",
		n, *d, float64(n)/d.Seconds(), float64(m1.Mallocs-m0.Mallocs)/float64(n), float64(m1.TotalAlloc-m0.TotalAlloc)/float64(n), m1.NumGC-m0.NumGC, *out)
}
