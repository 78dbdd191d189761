package main

import (
	"fmt"
	"os"
)

// The lab's network: a switch namespace holding a bridge; this machine joins it through one
// veth with the lab's .254 address (so hacluster, kubectl and the tests reach the nodes and
// the VIP); the services namespace (.2) and every node hang off the bridge. This machine
// forwards nothing (its ip_forward is checked), the services namespace forwards nothing, and
// nodes route by default to the services namespace: nothing leaves the lab.

func (l *Lab) netPrefix() string { return fmt.Sprintf("hlab%d", l.N) }

func (l *Lab) makeSwitch() error {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || string(b) != "0\n" {
		return fmt.Errorf("this machine forwards IPv4 (net.ipv4.ip_forward is not 0): a lab would route to its networks; refusing")
	}
	l.Switch = l.netPrefix() + "-sw"
	l.HostVeth = l.netPrefix()
	if err := l.save(); err != nil {
		return err
	}
	return sh(fmt.Sprintf(`ip netns add %[1]s
ip -n %[1]s link set lo up
ip -n %[1]s link add br0 type bridge
ip -n %[1]s link set br0 up
ip link add %[2]s type veth peer name up0 netns %[1]s
ip -n %[1]s link set up0 master br0 up
ip addr add %[3]s/24 dev %[2]s
ip link set %[2]s up
`, l.Switch, l.HostVeth, l.hostIP()))
}

// attach makes namespace `ns` with `eth0` at `ip` on the bridge; `gateway` is its default
// route ("" for none).
func (l *Lab) attach(ns, port, ip, gateway string) error {
	route := ""
	if gateway != "" {
		route = fmt.Sprintf("ip -n %s route add default via %s\n", ns, gateway)
	}
	return sh(fmt.Sprintf(`ip netns add %[1]s
ip -n %[1]s link set lo up
ip -n %[2]s link add %[3]s type veth peer name eth0 netns %[1]s
ip -n %[2]s link set %[3]s master br0 up
ip -n %[1]s addr add %[4]s/24 dev eth0
ip -n %[1]s link set eth0 up
ip netns exec %[1]s sysctl -qw net.ipv4.ip_forward=0
%[5]s`, ns, l.Switch, port, ip, route))
}
