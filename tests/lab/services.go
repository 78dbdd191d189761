package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The services namespace serves what an air-gapped site has, on the lab's bridge only: a
// resolver for the lab's names (nothing else: coredns needs an upstream that is not a
// loopback address, and no query may leave), the apt mirror over HTTP, and the registry.

const (
	mirrorName   = "mirror.lab"
	registryName = "registry.lab"
	registryPort = 5000
)

// startProc starts `args` in namespace `ns`, detached, its output in the lab's log dir, and
// records its PID (ip netns exec execs the command, so the PID is the command's).
func (l *Lab) startProc(name, ns string, args ...string) error {
	if err := os.MkdirAll(l.path("logs"), 0o700); err != nil {
		return err
	}
	log, err := os.OpenFile(l.path("logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %v", name, err)
	}
	l.Procs = append(l.Procs, Proc{Name: name, PID: cmd.Process.Pid, NS: ns})
	// Reaped by init once this process exits; nobody waits for it here.
	_ = cmd.Process.Release()
	return l.save()
}

func (l *Lab) startServices(mirrorDir, registryStore string) error {
	l.Services = l.netPrefix() + "-svc"
	if err := l.save(); err != nil {
		return err
	}
	if err := l.attach(l.Services, "svc", l.gateway(), ""); err != nil {
		return err
	}
	hosts := fmt.Sprintf("%s %s\n%s %s\n", l.gateway(), mirrorName, l.gateway(), registryName)
	for _, n := range l.Nodes {
		hosts += fmt.Sprintf("%s %s-%s\n", n.IP, l.Cluster, n.Short)
	}
	if err := os.WriteFile(l.path("hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	if err := l.startProc("resolver", l.Services, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--addn-hosts="+l.path("hosts"), "--listen-address="+l.gateway(),
		"--bind-interfaces", "--user=root", "--pid-file="+l.path("resolver.pid"), "--log-facility=-"); err != nil {
		return err
	}
	regCfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  maintenance:
    readonly:
      enabled: true
    uploadpurging:
      enabled: false
http:
  addr: %s:%d
`, registryStore, l.gateway(), registryPort)
	if err := os.WriteFile(l.path("registry.yml"), []byte(regCfg), 0o600); err != nil {
		return err
	}
	b, err := loadBuilds()
	if err != nil {
		return err
	}
	reg, err := b.bin("registry-v3.1.2", "registry")
	if err != nil {
		return err
	}
	if err := l.startProc("registry", l.Services, reg, "serve", l.path("registry.yml")); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := l.startProc("mirror", l.Services, self, "serve", "--dir", mirrorDir, "--addr", l.gateway()+":80"); err != nil {
		return err
	}
	return waitHTTP(fmt.Sprintf("http://%s:%d/v2/", l.gateway(), registryPort), fmt.Sprintf("http://%s/containerd/deb/Release", l.gateway()))
}

// waitHTTP waits until every URL answers 200.
func waitHTTP(urls ...string) error {
	// Never through a proxy from the environment: these addresses are the lab's own, and a
	// request for them must not leave this machine.
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(30 * time.Second)
	for _, u := range urls {
		for {
			r, err := c.Get(u)
			if err == nil {
				r.Body.Close()
				if r.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not answer within 30 s: %v", u, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// cmdServe is the mirror: files of one directory over HTTP, nothing else.
func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "directory to serve")
	addr := fs.String("addr", "", "address to listen on")
	_ = fs.Parse(args)
	if *dir == "" || *addr == "" {
		return fmt.Errorf("serve needs --dir and --addr")
	}
	root := http.FileServer(http.Dir(filepath.Clean(*dir)))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Files only: no directory listings.
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		root.ServeHTTP(w, r)
	})
	s := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	return s.ListenAndServe()
}
