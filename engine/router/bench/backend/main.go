// Command backend is the upstream of the router benchmark: a minimal HTTP
// server that reads each request's body and answers with its own id, so a load loop can tell
// which backend served it. It runs in its own process so that it does not
// share the load generator's or the proxy's goroutine scheduler.
//
// It listens on -listen (default 127.0.0.1:0) and prints "listening ADDR" on
// stdout once it accepts connections.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	id := flag.String("id", "a", "id written as the response body")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen %s: %v", *listen, err)
	}
	body := []byte(*id)
	length := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // a POST's body is read, as a real service would
		// Fixed headers so that no content sniffing or chunking costs time.
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", length)
		w.Write(body)
	})
	fmt.Fprintf(os.Stdout, "listening %s\n", ln.Addr())
	if err := http.Serve(ln, h); err != nil {
		log.Fatalf("serve: %v", err)
	}
}
