package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The lab's API endpoint is the libvirt plugin's own HAProxy + keepalived pair holding the VIP,
// on two lab nodes: their files are what `hacluster plan --out` shows that plugin renders for
// balancers at these addresses.
func (l *Lab) balancerFiles(operatorKey string) (map[string]map[string]string, error) {
	bin, plugin := os.Getenv("HACLUSTER_BIN"), os.Getenv("HACLUSTER_LIBVIRT_PLUGIN")
	if bin == "" || plugin == "" {
		return nil, fmt.Errorf("HACLUSTER_BIN and HACLUSTER_LIBVIRT_PLUGIN are not set (run the lab through scripts/lab)")
	}
	var masters, workers, lbs []string
	for _, n := range l.Nodes {
		id := n.Short[strings.LastIndex(n.Short, "-")+1:]
		switch n.Role {
		case "master":
			masters = append(masters, fmt.Sprintf("        - {id: %s, ip: %s}\n", id, n.IP))
		case "worker":
			workers = append(workers, fmt.Sprintf("        - {id: %s, ip: %s}\n", id, n.IP))
		case "lb":
			prio := 110
			if id != "1" {
				prio = 100
			}
			lbs = append(lbs, fmt.Sprintf("        - {id: %s, ip: %s, priority: %d}\n", id, n.IP, prio))
		}
	}
	cfg := fmt.Sprintf(`hosts:
  - name: lab
    connection: {type: local, uri: "test:///default"}
cluster:
  name: %s
  network: {mode: isolated, cidr: 10.232.%d.0/24}
  nodeTemplate: {ssh: {privateKeyPath: %s}}
  nodes:
    loadBalancer:
      vip: %s
      virtualRouterId: 51
      # The tests' web Service (NodePort 30080) through the VIP, as a site exposes a NodePort
      # Service: the balancers check each worker and retry a refused connection on another.
      forwardPorts:
        - {name: web, port: 8080, targetPort: 30080}
      instances:
%s    master:
      instances:
%s    worker:
      instances:
%skubernetes: {version: %s}
backends:
  libvirt: {domainType: test}
`, l.Cluster, l.N, operatorKey, l.vip(), strings.Join(lbs, ""), strings.Join(masters, ""), strings.Join(workers, ""), l.Version)
	dir := l.path("balancers")
	file := l.path("balancers.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if err := run(bin, "plan", "-c", file, "--plugin", plugin, "--state-dir", l.path("balancers-state"), "--out", dir); err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, n := range l.Nodes {
		if n.Role != "lb" {
			continue
		}
		files := map[string]string{}
		for name, dst := range map[string]string{
			"haproxy.cfg":      "etc/haproxy/haproxy.cfg",
			"keepalived.conf":  "etc/keepalived/keepalived.conf",
			"check_haproxy.sh": "etc/keepalived/check_haproxy.sh",
		} {
			b, err := os.ReadFile(filepath.Join(dir, l.Cluster+"-"+n.Short, name))
			if err != nil {
				return nil, err
			}
			files[dst] = string(b)
		}
		out[n.Short] = files
	}
	return out, nil
}

// writeConfig writes the cluster.yaml a user runs `hacluster up` with: the static backend
// with the lab's machines and pinned host keys behind the VIP, the lab's mirror and
// registry, and this machine's settings, each visible and explained.
func (l *Lab) writeConfig(operatorKey string) error {
	var masters, workers, machines []string
	for _, n := range l.Nodes {
		id := n.Short[strings.LastIndex(n.Short, "-")+1:]
		switch n.Role {
		case "master":
			masters = append(masters, "        - id: "+id+"\n")
		case "worker":
			workers = append(workers, "        - id: "+id+"\n")
		default:
			continue
		}
		machines = append(machines, fmt.Sprintf("      - node: %s\n        address: %s\n        hostKey: %s\n", n.Short, n.IP, n.HostKey))
	}
	workerBlock := ""
	if len(workers) > 0 {
		workerBlock = "    worker:\n      instances:\n" + strings.Join(workers, "")
	}
	cfg := fmt.Sprintf(`# Written by scripts/lab up (lab %[1]d, %[2]s). The machines are lab nodes: Debian with
# systemd, sshd and apt, in namespaces of this machine, on the lab's own bridge 10.232.%[1]d.0/24.
# Their host keys are pinned below; the API endpoint is the VIP that two lab balancers hold
# (HAProxy + keepalived as the libvirt backend renders them).
cluster:
  name: %[3]s
  nodeTemplate:
    user: k8s
    ssh:
      privateKeyPath: %[4]s
  nodes:
    master:
      instances:
%[5]s%[6]skubernetes:
  version: %[7]s
  networkPlugin: kube-router
  # An air-gapped site: packages, manifests and images come from the lab, not the internet.
  packageMirror: http://%[8]s
  imageRepository: %[9]s:%[10]d
  registryMirrors:
    - registry: "%[9]s:%[10]d"
      endpoint: "http://%[9]s:%[10]d"
      plainHttp: true
    - registry: docker.io
      endpoint: "http://%[9]s:%[10]d"
      plainHttp: true
  # What this machine needs, and nothing else does: its cgroups are v1 (kubelet 1.35+ refuses
  # them unless told, and kubeadm's system verification fails on them), and its processes lack
  # CAP_SYS_RESOURCE (so containerd must leave OOM scores alone).
  ignorePreflightErrors: [SystemVerification]
  kubelet:
    failCgroupV1: false
    # The nodes' disks are this machine's one filesystem, shared with everything else on it.
    # The kubelet's defaults (evict below 15%% free for images, 10%% for the node) taint every
    # node with disk-pressure as soon as the machine's disk is 85%% full, and no pod is
    # scheduled; its image garbage collection starts at 85%% and frees nothing of others'.
    # A lab node evicts below 1 GiB free, and keeps its images.
    evictionHard:
      memory.available: 100Mi
      nodefs.available: 1Gi
      nodefs.inodesFree: 1%%
      imagefs.available: 1Gi
    imageGCHighThresholdPercent: 100
  # The conntrack table's size is this machine's (read-only in a node's network namespace):
  # kube-proxy 1.36 fails at start when it cannot set it, unless told to leave it alone.
  kubeProxy:
    conntrack:
      maxPerCore: 0
  containerd:
    restrictOomScoreAdj: true
backends:
  static:
    endpoint: %[11]s:6443
    user: k8s
    machines:
%[12]s`, l.N, l.Created.Format("2006-01-02 15:04"), l.Cluster, operatorKey, strings.Join(masters, ""), workerBlock,
		l.Version, mirrorName, registryName, registryPort, l.vip(), strings.Join(machines, ""))
	l.Config = l.path("cluster.yaml")
	if err := os.WriteFile(l.Config, []byte(cfg), 0o600); err != nil {
		return err
	}
	return l.save()
}
