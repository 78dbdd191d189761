package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func cmdDown(args []string) error {
	ns := labNumbers()
	if len(args) > 0 {
		ns = nil
		for _, a := range args {
			n, err := strconv.Atoi(a)
			if err != nil {
				return fmt.Errorf("%q is not a lab number", a)
			}
			ns = append(ns, n)
		}
	}
	var failed []string
	for _, n := range ns {
		l, err := loadLab(n)
		if err != nil {
			// A lab that crashed before its record: what its name says is still found.
			l = &Lab{N: n, Cluster: fmt.Sprintf("lab%d", n)}
		}
		if err := l.down(); err != nil {
			failed = append(failed, fmt.Sprintf("lab %d: %v", n, err))
			continue
		}
		say("lab %d removed", n)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

func cmdList() error {
	for _, n := range labNumbers() {
		l, err := loadLab(n)
		if err != nil {
			fmt.Printf("%d\t(no record)\n", n)
			continue
		}
		fmt.Printf("%d\t%s\t%d nodes\t%s\n", n, l.Version, len(l.Nodes), l.Config)
	}
	return nil
}

// cmdNodes prints lab N's machines, one per line: name, role, address and the host key the
// lab pinned (`lab1-lb-1 lb 10.232.1.201 ssh-ed25519 AAAA…`), the balancers included, which
// the cluster.yaml does not list (a test uses one as a jump host).
func cmdNodes(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: lab nodes N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return fmt.Errorf("%q is not a lab number", args[0])
	}
	l, err := loadLab(n)
	if err != nil {
		return err
	}
	for _, node := range l.Nodes {
		fmt.Printf("%s-%s %s %s %s\n", l.Cluster, node.Short, node.Role, node.IP, node.HostKey)
	}
	return nil
}

// sameNetns says whether process pid lives in network namespace ns (so a recorded PID that
// now belongs to someone else is never killed).
func sameNetns(pid int, ns string) bool {
	a, err1 := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
	b, err2 := os.Stat("/run/netns/" + ns)
	if err1 != nil || err2 != nil {
		return false
	}
	sa, sb := a.Sys().(*syscall.Stat_t), b.Sys().(*syscall.Stat_t)
	return sa.Ino == sb.Ino && sa.Dev == sb.Dev
}

func killWait(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		// A zombie child of ours (the node's starter was released, not waited for).
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// down removes everything the lab made, by its record and, for what a crash left unrecorded,
// by its names: nodes (killing a node's PID 1 ends its pid namespace, and with it every
// process and mount of the node), services, cgroups (depth first, the unified tree too),
// namespaces and veths, files.
func (l *Lab) down() error {
	prefix := fmt.Sprintf("hlab%d-", l.N)
	for _, n := range l.Nodes {
		if n.PID > 0 && sameNetns(n.PID, n.NS) {
			killWait(n.PID)
		}
	}
	for _, p := range l.Procs {
		if p.PID > 0 && sameNetns(p.PID, p.NS) {
			killWait(p.PID)
		}
	}
	// Anything else still in one of the lab's namespaces (a process a crash left).
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		pids, _ := os.ReadDir("/proc")
		for _, p := range pids {
			if pid, err := strconv.Atoi(p.Name()); err == nil && pid != os.Getpid() && sameNetns(pid, e.Name()) {
				killWait(pid)
			}
		}
	}
	var errs []string
	// A process that runc had frozen (the v1 freezer) when its node died cannot exit until
	// its cgroup is thawed: seen once as a `runc init` in D state that kept a cgroup busy.
	for _, d := range l.cgroupDirs() {
		thaw(d)
	}
	for _, d := range l.cgroupDirs() {
		if err := removeCgroup(d); err != nil {
			errs = append(errs, err.Error())
		}
	}
	entries, _ = os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := run("ip", "netns", "del", e.Name()); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if _, err := net.InterfaceByName(fmt.Sprintf("hlab%d", l.N)); err == nil {
		if err := run("ip", "link", "del", fmt.Sprintf("hlab%d", l.N)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return os.RemoveAll(l.dir())
}

// cgroupDirs: those recorded, and those a crash left before recording, found by name.
func (l *Lab) cgroupDirs() []string {
	dirs := append([]string{}, l.Cgroups...)
	name := fmt.Sprintf("hacluster-lab-%d-", l.N)
	hs, _ := hierarchies()
	for _, h := range hs {
		base := filepath.Join(h.mountpoint, h.own)
		entries, _ := os.ReadDir(base)
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), name) {
				d := filepath.Join(base, e.Name())
				found := false
				for _, x := range dirs {
					found = found || x == d
				}
				if !found {
					dirs = append(dirs, d)
				}
			}
		}
	}
	return dirs
}

// removeCgroup removes a cgroup and everything below it, deepest first (a cgroup goes only
// once it is empty; the processes may take a moment to leave).
func removeCgroup(root string) error {
	if _, err := os.Stat(root); err != nil {
		return nil
	}
	var dirs []string
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	var last error
	for _, d := range dirs {
		for i := 0; i < 100; i++ {
			last = syscall.Rmdir(d)
			if last == nil || os.IsNotExist(last) {
				last = nil
				break
			}
			// Still busy: what is left in it is the lab's (nothing else runs in its cgroups).
			if i%10 == 9 {
				killCgroupProcs(d)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if last != nil {
			return fmt.Errorf("cgroup %s: %v", d, last)
		}
	}
	return nil
}

// thaw writes THAWED to every freezer.state below root (v1 freezer hierarchy only).
func thaw(root string) {
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && info.Name() == "freezer.state" {
			if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) != "THAWED" {
				_ = os.WriteFile(p, []byte("THAWED"), 0o644)
			}
		}
		return nil
	})
}

// killCgroupProcs sends SIGKILL to the processes still in cgroup d.
func killCgroupProcs(d string) {
	b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// waitTCP dials addr once.
func waitTCP(addr string, timeout time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	return c.Close()
}
