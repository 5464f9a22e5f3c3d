// Command upstream is the peer comparison's upstream: fasthttp answering
// every request with the same small JSON body (bench.UpstreamBody).
package main

import (
	"flag"
	"log"

	"github.com/valyala/fasthttp"

	"github.com/caracal-gw/caracal/bench"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18000", "address")
	flag.Parse()
	s := &fasthttp.Server{Handler: bench.Upstream, NoDefaultDate: true, NoDefaultServerHeader: true}
	log.Fatal(s.ListenAndServe(*listen))
}
