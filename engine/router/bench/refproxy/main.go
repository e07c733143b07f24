// Command refproxy is a reference leg of the router benchmark: a plain
// net/http/httputil.ReverseProxy in front of one backend, either tuned the
// way a production proxy should be (many idle connections per host, pooled
// copy buffers) or with Go's default transport, to show what each costs.
//
// It listens on -listen (default 127.0.0.1:0) and prints "listening ADDR" on
// stdout once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	backend := flag.String("backend", "", "backend URL, e.g. http://127.0.0.1:8080")
	tuned := flag.Bool("tuned", true, "use a tuned transport and a buffer pool instead of Go's defaults")
	flag.Parse()

	target, err := url.Parse(*backend)
	if err != nil || target.Host == "" {
		log.Fatalf("parse -backend %q: need http://host:port", *backend)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	if *tuned {
		proxy.Transport = &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
		proxy.BufferPool = newBufferPool()
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen %s: %v", *listen, err)
	}
	fmt.Fprintf(os.Stdout, "listening %s\n", ln.Addr())
	if err := http.Serve(ln, proxy); err != nil {
		log.Fatalf("serve: %v", err)
	}
}

// bufferPool hands httputil.ReverseProxy 32 KiB copy buffers from a
// sync.Pool so that each response does not allocate a fresh one.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}}
}

func (bp *bufferPool) Get() []byte { return *bp.p.Get().(*[]byte) }

func (bp *bufferPool) Put(b []byte) { bp.p.Put(&b) }
