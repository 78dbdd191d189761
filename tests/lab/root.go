package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// What a lab node's Debian has before hacluster touches it: a minimal system with systemd,
// sshd, sudo and apt (as a cloud image has), the tools a Kubernetes node needs from its
// distribution (iptables, conntrack, ipset, socat, ethtool; runc and the CNI plugins, which
// come from Debian's packages), and HAProxy and keepalived for the nodes that balance the API
// (disabled unless a node is one). busybox-static is for the images only.
var rootPackages = []string{
	"systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "iproute2", "curl",
	"ca-certificates", "gnupg", "kmod", "procps", "iptables", "conntrack", "ipset", "socat",
	"ethtool", "runc", "containernetworking-plugins", "haproxy", "keepalived", "busybox-static",
}

// What the root gets after debootstrap (in a chroot): the login user hacluster uses, no SSH
// host keys (each node gets the one the lab pins), no apt sources (an air-gapped machine:
// packages come from the lab's mirror, which hacluster configures), no units that make no
// sense in a namespace node, a machine id made per node, and a plain root .bashrc.
const rootSetup = `set -e
useradd -m -s /bin/bash k8s
echo 'k8s ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/k8s
chmod 0440 /etc/sudoers.d/k8s
install -d -m 0700 -o k8s -g k8s /home/k8s/.ssh
rm -f /etc/ssh/ssh_host_*
printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nHostKey /etc/ssh/ssh_host_ed25519_key\n' > /etc/ssh/sshd_config.d/lab.conf
systemctl disable haproxy keepalived >/dev/null 2>&1
systemctl mask getty@tty1.service console-getty.service apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service >/dev/null 2>&1
rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
: > /etc/machine-id
printf '# ~/.bashrc: a fresh machine'"'"'s, nothing more.\n' > /root/.bashrc
apt-get clean
`

// baseRoot is the shared, read-only lower layer of every node: made once per package list
// and setup script, cached under ~/.cache/hacluster/lab.
func baseRoot() (string, error) {
	h := sha256.Sum256([]byte(strings.Join(rootPackages, ",") + "\n" + rootSetup))
	dir := labCache(fmt.Sprintf("root-%x", h[:6]))
	if _, err := os.Stat(filepath.Join(dir, "etc", "os-release")); err == nil {
		return dir, nil
	}
	mirror := os.Getenv("DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	say("making the nodes' Debian root with debootstrap (once; cached in %s)", dir)
	if err := run("debootstrap", "--variant=minbase", "--include="+strings.Join(rootPackages, ","), "bookworm", tmp, mirror); err != nil {
		return "", err
	}
	if err := run("chroot", tmp, "sh", "-c", rootSetup); err != nil {
		return "", err
	}
	// debootstrap copies this machine's resolver; a node gets the lab's.
	_ = os.Remove(filepath.Join(tmp, "etc", "resolv.conf"))
	return dir, os.Rename(tmp, dir)
}
