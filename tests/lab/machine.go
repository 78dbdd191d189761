package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// A machine's death and its replacement, as a site sees them: `lab kill N NODE` ends the node
// (every process, its mounts and its network namespace, so its address answers nothing), and
// `lab renew N NODE` puts a new machine at the same address: a new disk (an empty upper layer
// and containerd directory) and a new SSH host key, printed on stdout for the operator's
// config, as the new machine's would be.

// labNode finds node `short` of lab `arg` (a lab number).
func labNode(args []string, usage string) (*Lab, *Node, int, error) {
	if len(args) != 2 {
		return nil, nil, 0, fmt.Errorf("usage: %s", usage)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%q is not a lab number", args[0])
	}
	l, err := loadLab(n)
	if err != nil {
		return nil, nil, 0, err
	}
	for i, node := range l.Nodes {
		if node.Short == args[1] || l.Cluster+"-"+node.Short == args[1] {
			return l, node, i, nil
		}
	}
	return nil, nil, 0, fmt.Errorf("lab %d has no node %q", n, args[1])
}

func cmdKill(args []string) error {
	l, n, _, err := labNode(args, "lab kill N NODE")
	if err != nil {
		return err
	}
	if err := l.kill(n); err != nil {
		return err
	}
	say("%s killed: its processes, mounts and network namespace are gone", n.Short)
	return nil
}

// kill ends node n: its PID 1 (with it the pid namespace, every process and mount), what is
// left in its cgroups, its cgroups, and its network namespace (and with it its veth).
func (l *Lab) kill(n *Node) error {
	if n.PID > 0 && sameNetns(n.PID, n.NS) {
		killWait(n.PID)
	}
	n.PID = 0
	var kept []string
	for _, d := range l.Cgroups {
		if !isNodeCgroup(l, n, d) {
			kept = append(kept, d)
			continue
		}
		thaw(d)
		if err := removeCgroup(d); err != nil {
			return err
		}
	}
	l.Cgroups = kept
	// The switch's end of the node's veth first: `ip netns del` only unlinks the namespace's
	// name, and the namespace (with the veth) goes once nothing holds it, which `renew`'s new
	// veth of the same name would not wait for. Deleting one end removes both.
	for i, x := range l.Nodes {
		if x == n {
			_ = run("ip", "-n", l.Switch, "link", "del", fmt.Sprintf("v%d", i))
		}
	}
	if _, err := os.Stat("/run/netns/" + n.NS); err == nil {
		if err := run("ip", "netns", "del", n.NS); err != nil {
			return err
		}
	}
	return l.save()
}

func isNodeCgroup(l *Lab, n *Node, d string) bool {
	suffix := fmt.Sprintf("/hacluster-lab-%d-%s", l.N, n.Short)
	return len(d) >= len(suffix) && d[len(d)-len(suffix):] == suffix
}

func cmdRenew(args []string) error {
	l, n, i, err := labNode(args, "lab renew N NODE")
	if err != nil {
		return err
	}
	if n.Role == "lb" {
		return fmt.Errorf("%s is a balancer: renew a control plane or a worker", n.Short)
	}
	t0 := time.Now()
	if err := l.kill(n); err != nil {
		return err
	}
	for _, d := range []string{"upper", "work", "merged", "containerd"} {
		if err := os.RemoveAll(l.nodeDir(n, d)); err != nil {
			return err
		}
	}
	root, err := baseRoot()
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(l.path("operator_ed25519.pub"))
	if err != nil {
		return err
	}
	hs, err := hierarchies()
	if err != nil {
		return err
	}
	if err := l.writeUpper(n, root, string(pub), nil); err != nil {
		return err
	}
	if err := l.save(); err != nil {
		return err
	}
	if err := l.attach(n.NS, fmt.Sprintf("v%d", i), n.IP, l.gateway()); err != nil {
		return err
	}
	if err := l.boot(n, root, hs); err != nil {
		return err
	}
	if err := waitSystem(n, 120*time.Second); err != nil {
		return err
	}
	if err := waitSSH(n.IP, 30*time.Second); err != nil {
		return err
	}
	say("%s is a new machine at %s in %.0f s (new disk, new host key)", n.Short, n.IP, time.Since(t0).Seconds())
	fmt.Println(n.HostKey)
	return nil
}
