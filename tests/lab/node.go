package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A node: the shared Debian root as the lower layer of an overlay, the node's own upper layer
// (its hostname, resolver, machine id, the SSH host key the lab pins, the operator's key; on a
// balancer, HAProxy and keepalived configured and enabled), /var/lib/containerd on a plain
// directory (the overlayfs snapshotter cannot work on an overlay upper), its own /proc, /sys,
// /dev, /run and /tmp, and the cgroup hierarchies mounted fresh inside a cgroup namespace
// rooted at cgroups of its own, nested under this process's. systemd runs as PID 1 of the
// node's pid namespace, in the node's network, mount, UTS and cgroup namespaces.

func (l *Lab) nodeDir(n *Node, p ...string) string {
	return l.path(append([]string{"nodes", n.Short}, p...)...)
}

// hierarchy is one cgroup mount of this machine: where, its type and options.
type hierarchy struct {
	name, fstype, opts, mountpoint, own string
}

// hierarchies reads this machine's cgroup mounts and this process's place in each.
func hierarchies() ([]hierarchy, error) {
	own := map[string]string{}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 {
			key := f[1]
			if key == "" {
				key = "unified"
			}
			own[key] = f[2]
		}
	}
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer mi.Close()
	var out []hierarchy
	sc := bufio.NewScanner(mi)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(f) || !strings.HasPrefix(f[4], "/sys/fs/cgroup/") {
			continue
		}
		fstype, super := f[sep+1], f[sep+3]
		h := hierarchy{name: filepath.Base(f[4]), fstype: fstype, mountpoint: f[4]}
		switch fstype {
		case "cgroup2":
			h.own = own["unified"]
		case "cgroup":
			// The controllers (and name=), as /proc/self/cgroup names the hierarchy.
			var ctrl []string
			for _, o := range strings.Split(super, ",") {
				switch {
				case o == "rw" || o == "ro" || o == "xattr" || o == "noprefix" || o == "clone_children" || o == "favordynmods" || o == "cpuset_v2_mode":
				case strings.HasPrefix(o, "release_agent="):
				default:
					ctrl = append(ctrl, o)
				}
			}
			h.opts = strings.Join(ctrl, ",")
			h.own = own[h.opts]
		default:
			continue
		}
		out = append(out, h)
	}
	return out, nil
}

// makeCgroups makes the node's cgroup in every hierarchy (recorded first, for `down`).
func (l *Lab) makeCgroups(n *Node, hs []hierarchy) ([]string, error) {
	var dirs []string
	for _, h := range hs {
		d := filepath.Join(h.mountpoint, h.own, fmt.Sprintf("hacluster-lab-%d-%s", l.N, n.Short))
		dirs = append(dirs, d)
		l.Cgroups = append(l.Cgroups, d)
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	for i, h := range hs {
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			return nil, err
		}
		if strings.Contains(","+h.opts+",", ",cpuset,") {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(filepath.Dir(dirs[i]), f))
				if err != nil {
					return nil, err
				}
				if err := os.WriteFile(filepath.Join(dirs[i], f), b, 0o644); err != nil {
					return nil, err
				}
			}
		}
	}
	return dirs, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeUpper puts the node's own files into its upper layer before it boots.
func (l *Lab) writeUpper(n *Node, root, operatorPub string, lbFiles map[string]string) error {
	up := l.nodeDir(n, "upper")
	host := l.Cluster + "-" + n.Short
	files := map[string]string{
		"etc/hostname":    host + "\n",
		"etc/hosts":       fmt.Sprintf("127.0.0.1 localhost\n%s %s\n", n.IP, host),
		"etc/resolv.conf": "nameserver " + l.gateway() + "\n",
		"etc/machine-id":  randomHex(16) + "\n",
	}
	for p, c := range lbFiles {
		files[p] = c
	}
	for p, c := range files {
		dst := filepath.Join(up, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(dst, []byte(c), mode); err != nil {
			return err
		}
	}
	// The host key the lab pins (hacluster is told it; nothing is accepted on first use).
	key := filepath.Join(up, "etc/ssh/ssh_host_ed25519_key")
	if err := os.MkdirAll(filepath.Dir(key), 0o755); err != nil {
		return err
	}
	if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host, "-f", key); err != nil {
		return err
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	n.HostKey = strings.Join(strings.Fields(string(pub))[:2], " ")
	// The operator's key for `k8s`, owned by it (sshd reads it as the user).
	uid, gid, err := userIDs(root, "k8s")
	if err != nil {
		return err
	}
	ssh := filepath.Join(up, "home/k8s/.ssh")
	if err := os.MkdirAll(ssh, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(ssh, "authorized_keys"), []byte(operatorPub), 0o600); err != nil {
		return err
	}
	for _, p := range []string{filepath.Join(up, "home/k8s"), ssh, filepath.Join(ssh, "authorized_keys")} {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(up, "home/k8s"), 0o755); err != nil {
		return err
	}
	if lbFiles != nil {
		wants := filepath.Join(up, "etc/systemd/system/multi-user.target.wants")
		if err := os.MkdirAll(wants, 0o755); err != nil {
			return err
		}
		for _, unit := range []string{"haproxy.service", "keepalived.service"} {
			if err := os.Symlink("/lib/systemd/system/"+unit, filepath.Join(wants, unit)); err != nil && !os.IsExist(err) {
				return err
			}
		}
	}
	return nil
}

func userIDs(root, user string) (int, int, error) {
	b, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 3 && f[0] == user {
			uid, _ := strconv.Atoi(f[2])
			gid, _ := strconv.Atoi(f[3])
			return uid, gid, nil
		}
	}
	return 0, 0, fmt.Errorf("no user %s in the nodes' root", user)
}

// boot starts the node: `lab node-start` moves itself into the node's cgroups and becomes
// nsenter → unshare, whose child (`lab node-init`, then systemd) is the node's PID 1.
func (l *Lab) boot(n *Node, root string, hs []hierarchy) error {
	for _, d := range []string{"upper", "work", "merged", "containerd"} {
		if err := os.MkdirAll(l.nodeDir(n, d), 0o755); err != nil {
			return err
		}
	}
	cgroups, err := l.makeCgroups(n, hs)
	if err != nil {
		return err
	}
	var specs []string
	for _, h := range hs {
		specs = append(specs, h.name+":"+h.fstype+":"+h.opts)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	log, err := os.OpenFile(l.path("logs", "node-"+n.Short+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(self, "node-start", "--cgroups", strings.Join(cgroups, ","), "--netns", n.NS, "--",
		"--lower", root, "--upper", l.nodeDir(n, "upper"), "--work", l.nodeDir(n, "work"),
		"--merged", l.nodeDir(n, "merged"), "--containerd", l.nodeDir(n, "containerd"),
		"--hostname", l.Cluster+"-"+n.Short, "--hierarchies", strings.Join(specs, ";"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	starter := cmd.Process.Pid
	_ = cmd.Process.Release()
	// The node's PID 1 is unshare's child.
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", starter, starter))
		if f := strings.Fields(string(b)); len(f) > 0 {
			n.PID, _ = strconv.Atoi(f[0])
			return l.save()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not start (see %s)", n.Short, l.path("logs", "node-"+n.Short+".log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cmdNodeStart: join the node's cgroups, then its network namespace, and start its PID 1 in
// new pid, mount, UTS and cgroup namespaces.
func cmdNodeStart(args []string) error {
	fs := flag.NewFlagSet("node-start", flag.ExitOnError)
	cgroups := fs.String("cgroups", "", "the node's cgroup directories")
	netns := fs.String("netns", "", "the node's network namespace")
	_ = fs.Parse(args)
	pid := []byte(strconv.Itoa(os.Getpid()))
	for _, d := range strings.Split(*cgroups, ",") {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), pid, 0o644); err != nil {
			return fmt.Errorf("joining %s: %v", d, err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return err
	}
	// IPC too: the node's SysV IPC objects and message queues are its own (systemd-logind in
	// a node removes a logged-out user's, by uid).
	argv := append([]string{"nsenter", "--net=/run/netns/" + *netns, "unshare", "--pid", "--fork", "--mount", "--uts",
		"--ipc", "--cgroup", "--propagation", "private", self, "node-init"}, fs.Args()...)
	return syscall.Exec(nsenter, argv, os.Environ())
}

// cmdNodeInit runs as the node's PID 1 until it becomes systemd: the node's file system,
// then pivot_root and exec.
func cmdNodeInit(args []string) error {
	fs := flag.NewFlagSet("node-init", flag.ExitOnError)
	lower := fs.String("lower", "", "")
	upper := fs.String("upper", "", "")
	work := fs.String("work", "", "")
	merged := fs.String("merged", "", "")
	containerd := fs.String("containerd", "", "")
	hostname := fs.String("hostname", "", "")
	hier := fs.String("hierarchies", "", "")
	_ = fs.Parse(args)
	m := *merged
	mount := func(src, dst, fstype string, flags uintptr, data string) error {
		if err := syscall.Mount(src, dst, fstype, flags, data); err != nil {
			return fmt.Errorf("mount %s on %s (%s): %v", src, dst, fstype, err)
		}
		return nil
	}
	if err := mount("overlay", m, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", *lower, *upper, *work)); err != nil {
		return err
	}
	steps := []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{*containerd, "var/lib/containerd", "", syscall.MS_BIND, ""},
		{"proc", "proc", "proc", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC, ""},
		{"sysfs", "sys", "sysfs", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC, ""},
		{"tmpfs", "sys/fs/cgroup", "tmpfs", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC, "mode=755"},
	}
	for _, s := range steps {
		dst := filepath.Join(m, s.dst)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := mount(s.src, dst, s.fstype, s.flags, s.data); err != nil {
			return err
		}
	}
	if err := shadowMachineSysctls(m); err != nil {
		return err
	}
	for _, spec := range strings.Split(*hier, ";") {
		f := strings.SplitN(spec, ":", 3)
		if len(f) != 3 {
			continue
		}
		dst := filepath.Join(m, "sys/fs/cgroup", f[0])
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		src, data := "cgroup", f[2]
		if f[1] == "cgroup2" {
			src, data = "cgroup2", ""
		}
		if err := mount(src, dst, f[1], syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, data); err != nil {
			return err
		}
	}
	// A /dev of its own: the usual device nodes bound from this machine's, new ptys.
	dev := filepath.Join(m, "dev")
	if err := mount("tmpfs", dev, "tmpfs", syscall.MS_NOSUID, "mode=755"); err != nil {
		return err
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty", "kmsg"} {
		p := filepath.Join(dev, d)
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return err
		}
		if err := mount("/dev/"+d, p, "", syscall.MS_BIND, ""); err != nil {
			return err
		}
	}
	console := filepath.Join(dev, "console")
	if err := os.WriteFile(console, nil, 0o600); err != nil {
		return err
	}
	if err := mount("/dev/null", console, "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	for _, d := range []struct{ dir, fstype, data string }{
		{"pts", "devpts", "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"shm", "tmpfs", "mode=1777"},
		{"mqueue", "mqueue", ""},
	} {
		p := filepath.Join(dev, d.dir)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		if err := mount(d.fstype, p, d.fstype, syscall.MS_NOSUID|syscall.MS_NOEXEC, d.data); err != nil {
			return err
		}
	}
	for link, target := range map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil {
			return err
		}
	}
	for _, t := range []struct{ dir, data string }{{"run", "mode=755"}, {"tmp", "mode=1777"}} {
		if err := mount("tmpfs", filepath.Join(m, t.dir), "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, t.data); err != nil {
			return err
		}
	}
	if err := syscall.Sethostname([]byte(*hostname)); err != nil {
		return err
	}
	// pivot_root, not chroot: the node's root must be its mount namespace's root. Under a
	// chroot the namespace's root stays this machine's, and a container's (runc pivots inside
	// that namespace) would too: `kubectl exec`, which enters a container's mount namespace,
	// landed in this machine's root (seen). The old root is detached: the node cannot see it.
	old := filepath.Join(m, ".lab-oldroot")
	if err := os.MkdirAll(old, 0o700); err != nil {
		return err
	}
	if err := syscall.PivotRoot(m, old); err != nil {
		return fmt.Errorf("pivot_root %s: %v", m, err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := syscall.Unmount("/.lab-oldroot", syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %v", err)
	}
	_ = os.Remove("/.lab-oldroot")
	return syscall.Exec("/lib/systemd/systemd", []string{"/lib/systemd/systemd"}, []string{"container=hacluster-lab"})
}

// waitSSH waits until the node's sshd accepts TCP connections.
func waitSSH(ip string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", ip+":22", time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s did not answer within %s: %v", ip, limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// inNode runs a command inside node n (all its namespaces, its root).
func inNode(n *Node, args ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(n.PID), "-a", "-r", "-w"}, args...)...).CombinedOutput()
	return string(out), err
}

// waitSystem waits for the node's systemd to finish booting; a degraded system names its
// failed units.
func waitSystem(n *Node, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, _ := inNode(n, "systemctl", "is-system-running")
		state := strings.TrimSpace(out)
		switch state {
		case "running":
			return nil
		case "degraded":
			failed, _ := inNode(n, "systemctl", "--failed", "--no-legend", "--plain")
			return fmt.Errorf("%s booted degraded: %s", n.Short, strings.TrimSpace(failed))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: systemd is %q after %s", n.Short, state, limit)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// machineSysctls are kernel settings of this whole machine, not of a namespace, that a node
// would change: its kubelet sets the first six at start (setupKernelTunables: among them
// kernel.panic=10 and kernel.panic_on_oops=1, which make any oops reboot the machine), and its
// systemd and `sysctl --system` apply Debian's sysctl.d (kernel.pid_max, fs.protected_*). Seen
// on this machine after a lab, before nodes had their own copies.
var machineSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
	"kernel/pid_max", "fs/protected_fifos", "fs/protected_hardlinks", "fs/protected_regular", "fs/protected_symlinks",
}

// shadowMachineSysctls gives the node at root (its /proc mounted) a file of its own over each
// of machineSysctls, starting at this machine's value: what the node reads and writes there
// stays in the node, and this machine's settings are never touched.
func shadowMachineSysctls(root string) error {
	dir := filepath.Join(root, ".lab-sysctl")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, key := range machineSysctls {
		proc := filepath.Join(root, "proc/sys", key)
		value, err := os.ReadFile(proc)
		if err != nil {
			continue // not a setting of this kernel
		}
		own := filepath.Join(dir, strings.ReplaceAll(key, "/", "."))
		if err := os.WriteFile(own, value, 0o644); err != nil {
			return err
		}
		if err := syscall.Mount(own, proc, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("a copy of %s for the node: %v", key, err)
		}
	}
	return nil
}
