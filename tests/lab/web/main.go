// Command web is the lab's test workload: `web serve ADDR` answers every request with the
// pod's hostname; `web get URL N` fetches URL N times and prints each answer on a line.
// Static and without libc, so its name lookups are Go's own (the lab's images have no NSS).
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: web serve ADDR | web get URL N")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		host, _ := os.Hostname()
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, host) })
		s := &http.Server{Addr: os.Args[2], Handler: h, ReadHeaderTimeout: 5 * time.Second}
		fmt.Fprintln(os.Stderr, s.ListenAndServe())
		os.Exit(1)
	case "get":
		n := 1
		if len(os.Args) > 3 {
			n, _ = strconv.Atoi(os.Args[3])
		}
		c := &http.Client{Timeout: 5 * time.Second}
		failed, retried := 0, 0
		for i := 0; i < n; i++ {
			// A new connection each time, so the Service may pick another backend; a request
			// that fails is tried twice more (and counted), one that fails thrice fails all.
			var body string
			var err error
			for try := 0; try < 3; try++ {
				if try > 0 {
					retried++
					time.Sleep(time.Second)
				}
				c.Transport = &http.Transport{DisableKeepAlives: true}
				var r *http.Response
				if r, err = c.Get(os.Args[2]); err == nil {
					b, _ := io.ReadAll(r.Body)
					r.Body.Close()
					body = strings.TrimSpace(string(b))
					break
				}
				fmt.Fprintln(os.Stderr, err)
			}
			if err != nil {
				failed++
				continue
			}
			fmt.Println(body)
		}
		fmt.Fprintf(os.Stderr, "%d requests, %d retried, %d failed\n", n, retried, failed)
		if failed > 0 {
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: web serve ADDR | web get URL N")
		os.Exit(2)
	}
}
