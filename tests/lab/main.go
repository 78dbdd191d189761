// Command lab makes a lab of real Kubernetes nodes on one machine, for hacluster's tests and
// for anyone who wants to see `hacluster up` make a cluster without hypervisors or a cloud.
//
// Each node is a Debian root booting systemd as PID 1 in its own pid, mount, UTS, cgroup and
// network namespaces, on a bridge of its own; a services namespace on that bridge serves what
// an air-gapped site has: a signed apt repository in pkgs.k8s.io's layout, an OCI registry,
// and a resolver. Everything in it is built by the project from the Kubernetes Go modules
// (scripts/build-k8s). No traffic leaves the lab: the bridge reaches this machine only through
// one veth with an address of its own, and nothing forwards.
//
//	lab up --control-planes N --workers M [--version v1.N.P]   prints a cluster.yaml path last
//	lab down [N ...]                                          removes labs (all without N)
//	lab list
//	lab nodes N                                               lab N's machines, host keys included
//	lab kill N NODE                                           the node dies: processes, mounts, namespace
//	lab renew N NODE                                          a new machine at its address; prints its host key
//	lab sample KUBECONFIG GET-PATH SERVICE-URL OUT STOP       what clients see, until STOP exists
//
// See README.md beside this file. scripts/lab builds and runs it.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	// The registry exports traces to localhost:4318 unless told not to.
	_ = os.Setenv("OTEL_TRACES_EXPORTER", "none")
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "up":
		err = cmdUp(args)
	case "down":
		err = cmdDown(args)
	case "list":
		err = cmdList()
	case "nodes":
		err = cmdNodes(args)
	case "kill":
		err = cmdKill(args)
	case "renew":
		err = cmdRenew(args)
	case "sample":
		err = cmdSample(args)
	case "serve":
		err = cmdServe(args)
	case "node-start":
		err = cmdNodeStart(args)
	case "node-init":
		err = cmdNodeInit(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: lab up --control-planes N --workers M [--version V] | lab down [N ...] | lab list | lab nodes N | lab kill N NODE | lab renew N NODE | lab sample KUBECONFIG GET-PATH SERVICE-URL OUT STOP")
	os.Exit(2)
}
