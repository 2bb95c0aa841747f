// Test service (Go runtime, standard library only) for the trace-header propagation observer.
//
// Inbound:    net/http.Server, HTTP/1.1 keep-alive; each connection's serve goroutine reads its
//             requests and runs the handler, on whichever OS thread the scheduler gives it.
// Downstream: one shared net/http.Client whose Transport keeps at most --pool connections to the
//             downstream host (fewer than the requests in flight: calls wait for a connection).
//             The Transport writes each request from its connection's writeLoop goroutine and
//             reads the response in readLoop: not the handler's goroutine.
//
// CLI:    svc --port P [--downstream http://127.0.0.1:PORT] [--pool N]
// Prints exactly one line "LISTENING <port>" on stdout, then serves until SIGTERM/SIGINT (exit 0).
// Routes (GET; the last path segment is an id the downstream call carries, /leaf/<id>):
//   /leaf/<id>[?delay_ms=N]  answers "ok" after N ms
//   /forward/<id>            copies every trace header present inbound
//   /drop/<id>               sends none
//   /partial/<id>            sends only x-b3-traceid, x-b3-spanid, x-b3-parentspanid, traceparent
//   /spawn-drop/<id>         sends none, from a goroutine the handler starts (and waits for)
//   /spawn-forward/<id>      copies them, from a goroutine the handler starts
// A delay_ms query is passed on to the leaf call.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

var traceHeaders = []string{
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
	"b3", "traceparent", "tracestate", "x-request-id", "x-ot-span-context",
}

var partialHeaders = []string{"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "traceparent"}

type service struct {
	client     *http.Client
	downstream string
}

// call makes the downstream GET /leaf/<id> with the given inbound headers copied.
func (s *service) call(ctx context.Context, in *http.Request, id string, copy []string) (int, error) {
	url := s.downstream + "/leaf/" + id
	if d := in.URL.Query().Get("delay_ms"); d != "" {
		url += "?delay_ms=" + d
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	for _, h := range copy {
		for _, v := range in.Header.Values(h) {
			req.Header.Add(h, v)
		}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(parts) != 2 {
		http.NotFound(w, r)
		return
	}
	route, id := parts[0], parts[1]
	if route == "leaf" {
		if d := r.URL.Query().Get("delay_ms"); d != "" {
			var ms int
			if _, err := fmt.Sscanf(d, "%d", &ms); err != nil {
				http.Error(w, "bad delay_ms", http.StatusBadRequest)
				return
			}
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		io.WriteString(w, "ok")
		return
	}
	var copy []string
	spawn := false
	switch route {
	case "forward":
		copy = traceHeaders
	case "drop":
	case "partial":
		copy = partialHeaders
	case "spawn-drop":
		spawn = true
	case "spawn-forward":
		copy, spawn = traceHeaders, true
	default:
		http.NotFound(w, r)
		return
	}
	if s.downstream == "" {
		http.Error(w, "downstream error: no --downstream", http.StatusBadGateway)
		return
	}
	var status int
	var err error
	if spawn {
		done := make(chan struct{})
		go func() {
			defer close(done)
			status, err = s.call(r.Context(), r, id, copy)
		}()
		<-done
	} else {
		status, err = s.call(r.Context(), r, id, copy)
	}
	if err != nil {
		http.Error(w, "downstream error: "+err.Error(), http.StatusBadGateway)
		return
	}
	fmt.Fprintf(w, "%d", status)
}

func main() {
	port := flag.Int("port", 0, "port to listen on (0: any)")
	downstream := flag.String("downstream", "", "base URL of the downstream service")
	pool := flag.Int("pool", 4, "downstream connections at most")
	flag.Parse()

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	transport := &http.Transport{
		MaxConnsPerHost:     *pool,
		MaxIdleConnsPerHost: *pool,
		IdleConnTimeout:     60 * time.Second,
	}
	s := &service{
		client:     &http.Client{Transport: transport, Timeout: 30 * time.Second},
		downstream: strings.TrimRight(*downstream, "/"),
	}
	srv := &http.Server{Handler: s, ErrorLog: nil}
	fmt.Printf("LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
