package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Root holds every lab: one directory per lab number, with its record (lab.json) written
// before each thing the lab makes, so `down` finds everything even after a crash.
const Root = "/var/lib/hacluster-lab"

// Lab is the record of one lab.
type Lab struct {
	N       int       `json:"n"`
	Cluster string    `json:"cluster"`
	Version string    `json:"version"`
	Created time.Time `json:"created"`
	// Network names: the switch namespace holding the bridge, the services namespace, and
	// the veth on this machine's side.
	Switch   string  `json:"switch"`
	Services string  `json:"services"`
	HostVeth string  `json:"hostVeth"`
	Nodes    []*Node `json:"nodes"`
	Procs    []Proc  `json:"procs"`
	// Cgroup directories made for the nodes, in every hierarchy.
	Cgroups []string `json:"cgroups"`
	Config  string   `json:"config,omitempty"`
}

// Node is one machine of the lab.
type Node struct {
	Short string `json:"short"`
	Role  string `json:"role"`
	IP    string `json:"ip"`
	NS    string `json:"ns"`
	// PID of the node's init (systemd) as this machine sees it.
	PID     int    `json:"pid"`
	HostKey string `json:"hostKey"`
}

// Proc is a service process the lab started (resolver, registry, mirror).
type Proc struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	NS   string `json:"ns"`
}

func (l *Lab) dir() string             { return filepath.Join(Root, strconv.Itoa(l.N)) }
func (l *Lab) path(p ...string) string { return filepath.Join(append([]string{l.dir()}, p...)...) }

// Subnet is the lab's /24: 10.232.N.0.
func (l *Lab) ip(last int) string { return fmt.Sprintf("10.232.%d.%d", l.N, last) }

// Gateway is the services namespace's address: resolver, registry and mirror, and the
// nodes' default route (it forwards nothing).
func (l *Lab) gateway() string { return l.ip(2) }
func (l *Lab) hostIP() string  { return l.ip(254) }
func (l *Lab) vip() string     { return l.ip(200) }

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.path("lab.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, l.path("lab.json"))
}

func loadLab(n int) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(Root, strconv.Itoa(n), "lab.json"))
	if err != nil {
		return nil, err
	}
	l := &Lab{}
	return l, json.Unmarshal(b, l)
}

// labNumbers lists the labs on this machine, by their directories.
func labNumbers() []int {
	entries, _ := os.ReadDir(Root)
	var ns []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			ns = append(ns, n)
		}
	}
	sort.Ints(ns)
	return ns
}

// allocate takes the lowest free lab number under a lock on the lab root: numbers come from
// what exists, never from a pid.
func allocate() (*Lab, error) {
	if err := os.MkdirAll(Root, 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(Root, ".alloc.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, err
	}
	for n := 1; n < 250; n++ {
		d := filepath.Join(Root, strconv.Itoa(n))
		if err := os.Mkdir(d, 0o700); err == nil {
			l := &Lab{N: n, Cluster: fmt.Sprintf("lab%d", n), Created: time.Now()}
			return l, l.save()
		} else if !errors.Is(err, os.ErrExist) {
			return nil, err
		}
	}
	return nil, errors.New("no free lab number (250 labs exist: run `scripts/lab down`)")
}

// say reports progress on stderr; stdout carries only the cluster.yaml path.
func say(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[lab] "+format+"\n", a...)
}

// run runs a command and returns its error with what it printed.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// output runs a command and returns what it printed on stdout.
func output(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// sh runs a shell script (ours, with no outside value in it unquoted).
func sh(script string) error { return run("sh", "-ec", script) }
