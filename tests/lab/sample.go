package main

// lab sample: what the API's clients and a Service's clients see while a cluster changes
// (an upgrade, a node replaced). Until the file STOP exists, it sends 10 requests a second
// to each of: the API's /readyz and a GET of a real object (`get` path, with the kubeconfig's
// client certificate), both through the kubeconfig's server (the endpoint), and the Service
// URL; a new connection for each request, a 5 s timeout. Every second, and at the end, it
// writes OUT: per target the requests, the failures (with their times and errors), and the
// longest time between two answered requests. The tests judge OUT.

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

type target struct {
	Requests    int      `json:"requests"`
	Failed      int      `json:"failed"`
	LongestGapS float64  `json:"longestGapSeconds"`
	Errors      []string `json:"errors"`
	lastOK      time.Time
}

func cmdSample(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("usage: lab sample KUBECONFIG GET-PATH SERVICE-URL OUT STOP")
	}
	kubeconfig, getPath, service, out, stop := args[0], args[1], args[2], args[3], args[4]
	server, cert, err := readKubeconfig(kubeconfig)
	if err != nil {
		return err
	}
	api := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		// The sampler asks whether the endpoint answers, not who it is.
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true},
	}}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	targets := map[string]*target{}
	urls := map[string]string{"readyz": server + "/readyz", "get": server + getPath, "service": service}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for name, url := range urls {
		t := &target{lastOK: start, Errors: []string{}}
		targets[name] = t
		client := api
		if name == "service" {
			client = plain
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for range tick.C {
				if _, err := os.Stat(stop); err == nil {
					return
				}
				at := time.Now()
				err := fetch(client, url)
				mu.Lock()
				t.Requests++
				if err != nil {
					t.Failed++
					if len(t.Errors) < 50 {
						t.Errors = append(t.Errors, fmt.Sprintf("%.1f s: %v", at.Sub(start).Seconds(), err))
					}
				} else {
					now := time.Now()
					if gap := now.Sub(t.lastOK).Seconds(); gap > t.LongestGapS {
						t.LongestGapS = gap
					}
					t.lastOK = now
				}
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	write := func() error {
		mu.Lock()
		b, err := json.MarshalIndent(targets, "", " ")
		mu.Unlock()
		if err != nil {
			return err
		}
		if err := os.WriteFile(out+".tmp", b, 0o644); err != nil {
			return err
		}
		return os.Rename(out+".tmp", out)
	}
	for {
		select {
		case <-done:
			return write()
		case <-time.After(time.Second):
			if err := write(); err != nil {
				return err
			}
		}
	}
}

func fetch(c *http.Client, url string) error {
	r, err := c.Get(url)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	_, _ = io.Copy(io.Discard, r.Body)
	if r.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", r.StatusCode)
	}
	return nil
}

// readKubeconfig takes the server and the client certificate of a kubeconfig that hacluster
// wrote (one cluster, one user, data inline).
func readKubeconfig(path string) (string, tls.Certificate, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", tls.Certificate{}, err
	}
	defer f.Close()
	fields := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ": ")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return "", tls.Certificate{}, err
	}
	certPEM, err1 := base64.StdEncoding.DecodeString(fields["client-certificate-data"])
	keyPEM, err2 := base64.StdEncoding.DecodeString(fields["client-key-data"])
	if fields["server"] == "" || err1 != nil || err2 != nil {
		return "", tls.Certificate{}, fmt.Errorf("%s: no server, or no inline client certificate and key", path)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return fields["server"], cert, err
}
