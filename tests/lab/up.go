package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func cmdUp(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	cps := fs.Int("control-planes", 3, "control-plane nodes")
	workers := fs.Int("workers", 1, "worker nodes")
	version := fs.String("version", "", "Kubernetes version of the mirror's default (default: the newest pinned)")
	_ = fs.Parse(args)
	if *cps < 1 || *cps > 9 || *workers < 0 || *workers > 50 {
		return fmt.Errorf("1-9 control planes and 0-50 workers")
	}
	t0 := time.Now()
	b, err := loadBuilds()
	if err != nil {
		return err
	}
	versions := b.kubeVersions()
	if len(versions) == 0 {
		return fmt.Errorf("no Kubernetes version with every component is built (scripts/build-k8s)")
	}
	v := versions[0]
	if *version != "" {
		v = ""
		for _, x := range versions {
			if x == *version || minor(x) == *version {
				v = x
			}
		}
		if v == "" {
			return fmt.Errorf("%s is not built; built: %s", *version, strings.Join(versions, ", "))
		}
	}
	if err := raiseInotifyLimits(); err != nil {
		return err
	}
	root, mirror, store, err := cachedParts(b)
	if err != nil {
		return err
	}
	l, err := allocate()
	if err != nil {
		return err
	}
	l.Version = v
	if err := l.up(*cps, *workers, root, mirror, store); err != nil {
		if os.Getenv("HACLUSTER_LAB_KEEP") == "" {
			say("lab %d failed; removing what it made (HACLUSTER_LAB_KEEP=1 keeps it)", l.N)
			_ = l.down()
		}
		return fmt.Errorf("lab %d: %v", l.N, err)
	}
	say("lab %d is up in %.0f s: %d control planes, %d workers, 2 balancers holding %s", l.N, time.Since(t0).Seconds(), *cps, *workers, l.vip())
	fmt.Println(l.Config)
	return nil
}

func (l *Lab) up(cps, workers int, root, mirror, store string) error {
	for i := 1; i <= cps; i++ {
		l.Nodes = append(l.Nodes, &Node{Short: fmt.Sprintf("master-%d", i), Role: "master", IP: l.ip(10 + i)})
	}
	for i := 1; i <= workers; i++ {
		l.Nodes = append(l.Nodes, &Node{Short: fmt.Sprintf("worker-%d", i), Role: "worker", IP: l.ip(20 + i)})
	}
	for i := 1; i <= 2; i++ {
		l.Nodes = append(l.Nodes, &Node{Short: fmt.Sprintf("lb-%d", i), Role: "lb", IP: l.ip(200 + i)})
	}
	for _, n := range l.Nodes {
		n.NS = fmt.Sprintf("%s-%s", l.netPrefix(), n.Short)
	}
	if err := l.save(); err != nil {
		return err
	}
	if err := os.MkdirAll(l.path("logs"), 0o700); err != nil {
		return err
	}
	key := l.path("operator_ed25519")
	if err := run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", l.Cluster+"-operator", "-f", key); err != nil {
		return err
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	if err := l.makeSwitch(); err != nil {
		return err
	}
	if err := l.startServices(mirror, store); err != nil {
		return err
	}
	lbs, err := l.balancerFiles(key)
	if err != nil {
		return err
	}
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	for i, n := range l.Nodes {
		files := lbs[n.Short]
		if err := l.writeUpper(n, root, string(pub), files); err != nil {
			return fmt.Errorf("%s: %v", n.Short, err)
		}
		if err := l.attach(n.NS, fmt.Sprintf("v%d", i), n.IP, l.gateway()); err != nil {
			return fmt.Errorf("%s: %v", n.Short, err)
		}
		if err := l.boot(n, root, hs); err != nil {
			return fmt.Errorf("%s: %v", n.Short, err)
		}
	}
	say("%d nodes booting", len(l.Nodes))
	var wg sync.WaitGroup
	errs := make([]error, len(l.Nodes))
	for i, n := range l.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := waitSystem(n, 120*time.Second); err != nil {
				errs[i] = err
				return
			}
			errs[i] = waitSSH(n.IP, 30*time.Second)
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	if err := waitVIP(l.vip(), 30*time.Second); err != nil {
		return err
	}
	return l.writeConfig(key)
}

// waitVIP waits until a balancer holds the VIP and its HAProxy accepts on 6443 (nothing is
// behind it yet: a refused or reset connection after accept is fine).
func waitVIP(vip string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, _ := output("ip", "neigh", "show", vip)
		err := waitTCP(vip+":6443", time.Second)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no balancer holds the VIP %s within %s (%v; %s)", vip, limit, err, strings.TrimSpace(out))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// inotifyLimits are what a lab of a dozen nodes needs. Every node's systemd, kubelet,
// containerd and control-plane components take inotify instances from one pool: root's on
// this kernel, shared by all nodes. At Debian's default of 128, a lab of 3 control planes
// and 5 workers ran out, and the kubelets of the last nodes died at start ("error creating
// fsnotify watcher: too many open files"). kind asks its users for the same settings.
var inotifyLimits = []struct {
	key  string
	want int
}{
	{"fs/inotify/max_user_instances", 8192},
	{"fs/inotify/max_user_watches", 524288},
}

// raiseInotifyLimits raises this machine's inotify limits to inotifyLimits where they are
// lower (never lowers one), and says so.
func raiseInotifyLimits() error {
	for _, l := range inotifyLimits {
		path := "/proc/sys/" + l.key
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		have, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		if have >= l.want {
			continue
		}
		if err := os.WriteFile(path, []byte(strconv.Itoa(l.want)), 0o644); err != nil {
			return fmt.Errorf("raising %s from %d to %d (the lab's nodes share it): %v", strings.ReplaceAll(l.key, "/", "."), have, l.want, err)
		}
		say("raised %s from %d to %d: the lab's nodes share this machine's inotify limits", strings.ReplaceAll(l.key, "/", "."), have, l.want)
	}
	return nil
}

// cachedParts makes (or finds in the cache) what every lab shares: the nodes' root, the
// mirror and the registry's store. One `lab up` at a time: two building the same cache entry
// at once would remove each other's half-made directory.
func cachedParts(b Builds) (root, mirror, store string, err error) {
	if err := os.MkdirAll(labCache(), 0o755); err != nil {
		return "", "", "", err
	}
	lock, err := os.OpenFile(labCache(".build.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", "", "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", "", "", err
	}
	if root, err = baseRoot(); err != nil {
		return "", "", "", err
	}
	if mirror, err = buildMirror(b); err != nil {
		return "", "", "", err
	}
	store, err = registryStore(b, root)
	return root, mirror, store, err
}
