// Invalid configs, one mistake each: every validation rule with the valid base config it is
// broken in and what must be reported (the field path, the line marked `#<` in the YAML, a
// phrase of the message). Data only, included by two tests: the library's
// (crates/hacluster-config/tests/rules.rs, in seconds) and the binary's, text and JSON
// (tests/e2e/invalid_configs.rs).

const BASE: &str = "\
hosts:
  - name: localhost
    connection:
      type: local
cluster:
  name: demo
  network:
    mode: nat
    cidr: 192.168.113.0/24
  nodes:
    loadBalancer:
      instances:
        - id: 1
          ip: 192.168.113.100
    master:
      instances:
        - id: 1
          ip: 192.168.113.10
        - id: 2
          ip: 192.168.113.11
        - id: 3
          ip: 192.168.113.12
    worker:
      instances:
        - id: 1
          ip: 192.168.113.20
kubernetes:
  version: v1.35.0
";

const AWS_BASE: &str = "\
cluster:
  name: demo
  nodes:
    master:
      instances:
        - id: 1
        - id: 2
        - id: 3
    worker:
      instances:
        - id: 1
kubernetes:
  version: v1.35.0
backends:
  aws:
    region: eu-central-1
    availabilityZones: [eu-central-1a, eu-central-1b, eu-central-1c]
    ami: ami-0123456789abcdef0
    adminCidrs: [203.0.113.0/24]
";

struct Case {
    name: &'static str,
    base: &'static str,
    /// (text to find exactly once, replacement)
    edits: &'static [(&'static str, &'static str)],
    /// Field path the error must name.
    path: &'static str,
    /// A phrase the message (or help) must contain.
    says: &'static str,
}

const fn case(
    name: &'static str,
    edits: &'static [(&'static str, &'static str)],
    path: &'static str,
    says: &'static str,
) -> Case {
    Case { name, base: BASE, edits, path, says }
}

const fn aws(
    name: &'static str,
    edits: &'static [(&'static str, &'static str)],
    path: &'static str,
    says: &'static str,
) -> Case {
    Case { name, base: AWS_BASE, edits, path, says }
}

const MASTERS: &str = "    master:
      instances:
        - id: 1
          ip: 192.168.113.10
        - id: 2
          ip: 192.168.113.11
        - id: 3
          ip: 192.168.113.12
";

const CASES: &[Case] = &[
    case(
        "even number of control planes",
        &[
            (
                "          ip: 192.168.113.12\n",
                "          ip: 192.168.113.12\n        - id: 4\n          ip: 192.168.113.13\n",
            ),
            ("        - id: 1\n          ip: 192.168.113.10\n", "        - id: 1 #<\n          ip: 192.168.113.10\n"),
        ],
        "cluster.nodes.master.instances",
        "quorum",
    ),
    case(
        "no control plane",
        &[(MASTERS, "    master:\n      instances: [] #<\n")],
        "cluster.nodes.master.instances",
        "no control-plane node",
    ),
    case(
        "several control planes without an endpoint",
        &[
            ("    loadBalancer:\n      instances:\n        - id: 1\n          ip: 192.168.113.100\n", ""),
            ("        - id: 1\n          ip: 192.168.113.10\n", "        - id: 1 #<\n          ip: 192.168.113.10\n"),
        ],
        "cluster.nodes.master.instances",
        "stable API endpoint",
    ),
    case(
        "two load balancers without a VIP",
        &[(
            "      instances:\n        - id: 1\n          ip: 192.168.113.100\n",
            "      instances: #<\n        - id: 1\n          ip: 192.168.113.100\n        - id: 2\n          ip: 192.168.113.101\n",
        )],
        "cluster.nodes.loadBalancer.vip",
        "virtual IP",
    ),
    case(
        "VIP without load balancers",
        &[
            (
                "    loadBalancer:\n      instances:\n        - id: 1\n          ip: 192.168.113.100\n",
                "    loadBalancer:\n      vip: 192.168.113.200 #<\n",
            ),
            (
                "    master:\n      instances:\n        - id: 1\n          ip: 192.168.113.10\n        - id: 2\n          ip: 192.168.113.11\n        - id: 3\n          ip: 192.168.113.12\n",
                "    master:\n      instances:\n        - id: 1\n          ip: 192.168.113.10\n",
            ),
        ],
        "cluster.nodes.loadBalancer.vip",
        "needs load balancers",
    ),
    case(
        "duplicate control-plane id",
        &[("        - id: 2\n          ip: 192.168.113.11", "        - id: 1 #<\n          ip: 192.168.113.11")],
        "cluster.nodes.master.instances[1].id",
        "already used",
    ),
    case(
        "duplicate address",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.11 #<")],
        "cluster.nodes.worker.instances[0].ip",
        "already used by cluster.nodes.master.instances[1].ip",
    ),
    case(
        "duplicate MAC",
        &[
            ("          ip: 192.168.113.10\n", "          ip: 192.168.113.10\n          mac: 52:54:00:00:00:01\n"),
            ("          ip: 192.168.113.20\n", "          ip: 192.168.113.20\n          mac: 52:54:00:00:00:01 #<\n"),
        ],
        "cluster.nodes.worker.instances[0].mac",
        "already used",
    ),
    case(
        "duplicate host name",
        &[("    connection:\n      type: local\n", "    connection:\n      type: local\n  - name: localhost #<\n")],
        "hosts[1].name",
        "already used",
    ),
    case(
        "address outside the network",
        &[("          ip: 192.168.113.20", "          ip: 192.168.114.20 #<")],
        "cluster.nodes.worker.instances[0].ip",
        "outside the node network",
    ),
    case(
        "network address",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.0 #<")],
        "cluster.nodes.worker.instances[0].ip",
        "network address",
    ),
    case(
        "broadcast address",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.255 #<")],
        "cluster.nodes.worker.instances[0].ip",
        "broadcast",
    ),
    case(
        "gateway address",
        &[
            ("    cidr: 192.168.113.0/24\n", "    cidr: 192.168.113.0/24\n    gateway: 192.168.113.254\n"),
            ("          ip: 192.168.113.20", "          ip: 192.168.113.254 #<"),
        ],
        "cluster.nodes.worker.instances[0].ip",
        "gateway",
    ),
    case(
        "VIP reused by a node",
        &[
            (
                "    loadBalancer:\n      instances:\n        - id: 1\n          ip: 192.168.113.100\n",
                "    loadBalancer:\n      vip: 192.168.113.200\n      instances:\n        - id: 1\n          ip: 192.168.113.100\n        - id: 2\n          ip: 192.168.113.101\n",
            ),
            ("          ip: 192.168.113.20", "          ip: 192.168.113.200 #<"),
        ],
        "cluster.nodes.worker.instances[0].ip",
        "already used by cluster.nodes.loadBalancer.vip",
    ),
    case(
        "VIP outside the network",
        &[("    loadBalancer:\n      instances:\n", "    loadBalancer:\n      vip: 10.0.0.5 #<\n      instances:\n")],
        "cluster.nodes.loadBalancer.vip",
        "outside the node network",
    ),
    case(
        "unknown host affinity",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.20\n          host: localhots #<")],
        "cluster.nodes.worker.instances[0].host",
        "did you mean `localhost`",
    ),
    case(
        "data disk pool not on the host",
        &[(
            "          ip: 192.168.113.20",
            "          ip: 192.168.113.20\n          dataDisks:\n            - name: rook\n              pool: data-pool #<\n              size: 10",
        )],
        "cluster.nodes.worker.instances[0].dataDisks[0].pool",
        "not defined on host `localhost`",
    ),
    case(
        "several hosts without bridge mode",
        &[
            ("      type: local\n", "      type: local\n  - name: other\n    connection:\n      type: local\n"),
            ("    mode: nat", "    mode: nat #<"),
            ("          ip: 192.168.113.20", "          ip: 192.168.113.20\n          host: other"),
        ],
        "cluster.network.mode",
        "bridge",
    ),
    case(
        "bridge mode without a bridge",
        &[("    mode: nat\n", "    mode: bridge\n")],
        "cluster.network.bridge",
        "bridge mode needs",
    ),
    case(
        "VRRP router id 0",
        &[(
            "    loadBalancer:\n      instances:\n",
            "    loadBalancer:\n      vip: 192.168.113.200\n      virtualRouterId: 0 #<\n      instances:\n",
        )],
        "cluster.nodes.loadBalancer.virtualRouterId",
        "between 1 and 255",
    ),
    case(
        "VRRP router id 256",
        &[(
            "    loadBalancer:\n      instances:\n",
            "    loadBalancer:\n      vip: 192.168.113.200\n      virtualRouterId: 256 #<\n      instances:\n",
        )],
        "cluster.nodes.loadBalancer.virtualRouterId",
        "between 1 and 255",
    ),
    case(
        "priority above 255",
        &[("          ip: 192.168.113.100", "          ip: 192.168.113.100\n          priority: 300 #<")],
        "cluster.nodes.loadBalancer.instances[0].priority",
        "between 0 and 255",
    ),
    case(
        "negative priority",
        &[("          ip: 192.168.113.100", "          ip: 192.168.113.100\n          priority: -1 #<")],
        "cluster.nodes.loadBalancer.instances[0].priority",
        "between 0 and 255",
    ),
    case(
        "zero CPUs",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.20\n          cpu: 0 #<")],
        "cluster.nodes.worker.instances[0].cpu",
        "between 1 and 1024",
    ),
    case(
        "negative RAM",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.20\n          ram: -4 #<")],
        "cluster.nodes.worker.instances[0].ram",
        "between 1 and 65536",
    ),
    case(
        "huge disk",
        &[(
            "          ip: 192.168.113.20",
            "          ip: 192.168.113.20\n          mainDiskSize: 1000000000000000000000000000000 #<",
        )],
        "cluster.nodes.worker.instances[0].mainDiskSize",
        "out of range",
    ),
    case(
        "zero-sized data disk",
        &[(
            "          ip: 192.168.113.20",
            "          ip: 192.168.113.20\n          dataDisks:\n            - name: rook\n              size: 0 #<",
        )],
        "cluster.nodes.worker.instances[0].dataDisks[0].size",
        "between 1 and",
    ),
    case(
        "malformed Kubernetes version",
        &[("  version: v1.35.0", "  version: \"1.23\" #<")],
        "kubernetes.version",
        "v1.MINOR.PATCH",
    ),
    case(
        "Kubernetes version too new",
        &[("  version: v1.35.0", "  version: v1.99.0 #<")],
        "kubernetes.version",
        "newer than this hacluster knows",
    ),
    case(
        "Kubernetes version too old",
        &[("  version: v1.35.0", "  version: v1.18.0 #<")],
        "kubernetes.version",
        "older than hacluster supports",
    ),
    case(
        "misspelt field",
        &[("    worker:\n      instances:", "    worker:\n      instnces: #<")],
        "cluster.nodes.worker.instnces",
        "did you mean `instances`",
    ),
    case("unknown top-level field", &[("kubernetes:\n", "kubernets: #<\n")], "kubernets", "did you mean `kubernetes`"),
    case(
        "CPU given as text",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.20\n          cpu: lots #<")],
        "cluster.nodes.worker.instances[0].cpu",
        "expected a whole number",
    ),
    case(
        "instances as a mapping",
        &[(
            "    worker:\n      instances:\n        - id: 1\n          ip: 192.168.113.20",
            "    worker:\n      instances:\n        id: 1 #<\n        ip: 192.168.113.20",
        )],
        "cluster.nodes.worker.instances",
        "expected a list",
    ),
    case(
        "misspelt CNI",
        &[("  version: v1.35.0", "  version: v1.35.0\n  networkPlugin: calcio #<")],
        "kubernetes.networkPlugin",
        "did you mean `calico`",
    ),
    case(
        "unknown network mode",
        &[("    mode: nat", "    mode: bridged #<")],
        "cluster.network.mode",
        "did you mean `bridge`",
    ),
    case(
        "CIDR prefix too long",
        &[("    cidr: 192.168.113.0/24", "    cidr: 192.168.113.0/33 #<")],
        "cluster.network.cidr",
        "CIDR notation",
    ),
    case(
        "CIDR with host bits",
        &[("    cidr: 192.168.113.0/24", "    cidr: 192.168.113.7/24 #<")],
        "cluster.network.cidr",
        "`192.168.113.0/24`",
    ),
    case(
        "malformed address",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.300 #<")],
        "cluster.nodes.worker.instances[0].ip",
        "not an IPv4 address",
    ),
    case(
        "malformed MAC",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.20\n          mac: 52:54:00:zz:00:01 #<")],
        "cluster.nodes.worker.instances[0].mac",
        "not a MAC address",
    ),
    case(
        "multicast MAC",
        &[("          ip: 192.168.113.20", "          ip: 192.168.113.20\n          mac: 01:00:5e:00:00:01 #<")],
        "cluster.nodes.worker.instances[0].mac",
        "multicast",
    ),
    case(
        "remote host without address",
        &[(
            "      type: local\n",
            "      type: remote #<\n      user: kubitect\n      ssh:\n        keyfile: ~/.ssh/id_rsa\n",
        )],
        "hosts[0].connection.ip",
        "connection.ip",
    ),
    case(
        "a node id with a dash (another cluster's node could have the same name)",
        &[("        - id: 1\n          ip: 192.168.113.20", "        - id: worker-1 #<\n          ip: 192.168.113.20")],
        "cluster.nodes.worker.instances[0].id",
        "another cluster's node",
    ),
    case(
        "a pool directory that climbs",
        &[("      type: local\n", "      type: local\n    mainResourcePoolPath: /var/lib/libvirt/../../etc #<\n")],
        "hosts[0].mainResourcePoolPath",
        "plain absolute directory",
    ),
    case(
        "a relative data pool directory",
        &[(
            "      type: local\n",
            "      type: local\n    dataResourcePools:\n      - name: data\n        path: pools/data #<\n",
        )],
        "hosts[0].dataResourcePools[0].path",
        "plain absolute directory",
    ),
    case(
        "a libvirt URI that runs a program",
        &[("      type: local\n", "      type: local\n      uri: \"qemu+ext:///system?command=/bin/x\" #<\n")],
        "hosts[0].connection.uri",
        "transport `qemu+ext`",
    ),
    case(
        "a libvirt URI that skips the host key check",
        &[(
            "      type: local\n",
            "      type: local\n      uri: \"qemu+ssh://k8s@10.10.0.5/system?no_verify=1\" #<\n",
        )],
        "hosts[0].connection.uri",
        "`no_verify` is not allowed",
    ),
    case(
        "a libvirt URI over TLS instead of SSH",
        &[("      type: local\n", "      type: local\n      uri: \"qemu://10.10.0.5/system\" #<\n")],
        "hosts[0].connection.uri",
        "over SSH",
    ),
    case(
        "a libvirt URI for an embedded driver",
        &[("      type: local\n", "      type: local\n      uri: \"qemu:///embed?root=/tmp/x\" #<\n")],
        "hosts[0].connection.uri",
        "not /system or /session",
    ),
    case(
        "a keyfile that adds a URI parameter",
        &[(
            "      type: local\n",
            "      type: remote\n      user: kubitect\n      ip: 10.10.0.5\n      ssh:\n        keyfile: \"/k&command=/bin/x\" #<\n",
        )],
        "hosts[0].connection.ssh.keyfile",
        "not a plain path",
    ),
    case(
        "an SSH user that is an option",
        &[(
            "      type: local\n",
            "      type: remote\n      user: \"-oProxyCommand=x\" #<\n      ip: 10.10.0.5\n      ssh:\n        keyfile: ~/.ssh/id\n",
        )],
        "hosts[0].connection.user",
        "not a user name",
    ),
    case(
        "a host address that is an option",
        &[(
            "      type: local\n",
            "      type: remote\n      user: kubitect\n      ip: \"-oProxyCommand=touch /tmp/x\" #<\n      ssh:\n        keyfile: ~/.ssh/id\n",
        )],
        "hosts[0].connection.ip",
        "not an IP address or a DNS name",
    ),
    case(
        "host key check turned off",
        &[(
            "      type: local\n",
            "      type: remote\n      user: kubitect\n      ip: 10.10.0.5\n      ssh:\n        keyfile: ~/.ssh/id\n        verify: false #<\n",
        )],
        "hosts[0].connection.ssh.verify",
        "always checks",
    ),
    case(
        "two default hosts",
        &[("      type: local\n", "      type: local\n    default: true\n  - name: other\n    default: true #<\n")],
        "hosts[1].default",
        "both marked",
    ),
    case("invalid cluster name", &[("  name: demo", "  name: My_Cluster #<")], "cluster.name", "DNS label"),
    case("missing cluster name", &[("  name: demo\n", "")], "cluster.name", "required field `name`"),
    case(
        "pod subnet overlapping the nodes",
        &[("  version: v1.35.0", "  version: v1.35.0\n  podSubnet: 192.168.0.0/16 #<")],
        "kubernetes.podSubnet",
        "overlaps the node network",
    ),
    case(
        "service subnet overlapping pods",
        &[("  version: v1.35.0", "  version: v1.35.0\n  podSubnet: 10.96.0.0/16\n  serviceSubnet: 10.96.0.0/12 #<")],
        "kubernetes.serviceSubnet",
        "overlaps the pod subnet",
    ),
    case(
        "malformed taint",
        &[(
            "          ip: 192.168.113.20",
            "          ip: 192.168.113.20\n          taints:\n            - dedicated=gpu #<",
        )],
        "cluster.nodes.worker.instances[0].taints[0]",
        "not a taint",
    ),
    case(
        "malformed label",
        &[(
            "          ip: 192.168.113.20",
            "          ip: 192.168.113.20\n          labels:\n            \"bad key!\": x #<",
        )],
        "cluster.nodes.worker.instances[0].labels.bad key!",
        "not a valid Kubernetes label",
    ),
    case(
        "forwarding the API port",
        &[(
            "          ip: 192.168.113.100\n",
            "          ip: 192.168.113.100\n      forwardPorts:\n        - name: api\n          port: 6443 #<\n",
        )],
        "cluster.nodes.loadBalancer.forwardPorts[0].port",
        "used by the load balancer itself",
    ),
    case(
        "root as login user",
        &[("  network:\n", "  nodeTemplate:\n    user: root #<\n  network:\n")],
        "cluster.nodeTemplate.user",
        "other than root",
    ),
    case(
        "duplicate data disk names",
        &[(
            "          ip: 192.168.113.20",
            "          ip: 192.168.113.20\n          dataDisks:\n            - name: rook\n              size: 10\n            - name: rook #<\n              size: 20",
        )],
        "cluster.nodes.worker.instances[0].dataDisks[1].name",
        "defined twice",
    ),
    case(
        "uppercase node id",
        &[("        - id: 1\n          ip: 192.168.113.20", "        - id: Worker1 #<\n          ip: 192.168.113.20")],
        "cluster.nodes.worker.instances[0].id",
        "lowercase",
    ),
    case(
        "duplicate YAML key",
        &[("    mode: nat\n", "    mode: nat\n    mode: bridge #<\n")],
        "cluster.network.mode",
        "appears twice",
    ),
    case("tab indentation", &[("    mode: nat\n", "\tmode: nat #<\n")], "cluster.network", "not valid YAML"),
    case(
        "not enough room in the network",
        &[("    cidr: 192.168.113.0/24", "    cidr: 192.168.113.0/30 #<")],
        "cluster.network.cidr",
        "too few",
    ),
    aws(
        "AWS region",
        &[("    region: eu-central-1", "    region: Frankfurt #<")],
        "backends.aws.region",
        "not an AWS region",
    ),
    aws(
        "AWS zone outside the region",
        &[("[eu-central-1a, eu-central-1b, eu-central-1c]", "[eu-central-1a, eu-west-1b, eu-central-1c] #<")],
        "backends.aws.availabilityZones[1]",
        "not a zone of region eu-central-1",
    ),
    aws(
        "AWS AMI id",
        &[("    ami: ami-0123456789abcdef0", "    ami: ubuntu-24.04 #<")],
        "backends.aws.ami",
        "not an AMI id",
    ),
    aws(
        "AWS VPC id and CIDR together",
        &[(
            "    adminCidrs: [203.0.113.0/24]\n",
            "    adminCidrs: [203.0.113.0/24]\n    vpc:\n      id: vpc-0123456789abcdef0\n      cidr: 10.0.0.0/16 #<\n      subnetIds: [subnet-0123456789abcdef0, subnet-0123456789abcdef1, subnet-0123456789abcdef2]\n",
        )],
        "backends.aws.vpc.cidr",
        "not both",
    ),
    aws(
        "AWS endpoint over plain http",
        &[(
            "    adminCidrs: [203.0.113.0/24]\n",
            "    adminCidrs: [203.0.113.0/24]\n    endpoint: http://aws.example.com #<\n",
        )],
        "backends.aws.endpoint",
        "not an https URL",
    ),
    aws(
        "AWS endpoint over plain http to a host named like localhost",
        &[(
            "    adminCidrs: [203.0.113.0/24]\n",
            "    adminCidrs: [203.0.113.0/24]\n    endpoint: http://localhost.evil.example #<\n",
        )],
        "backends.aws.endpoint",
        "`localhost.evil.example` is another host",
    ),
    aws(
        "AWS endpoint over plain http to a host named like 127.0.0.1",
        &[(
            "    adminCidrs: [203.0.113.0/24]\n",
            "    adminCidrs: [203.0.113.0/24]\n    endpoint: http://127.0.0.1.evil.example:5000 #<\n",
        )],
        "backends.aws.endpoint",
        "`127.0.0.1.evil.example` is another host",
    ),
    aws(
        "AWS endpoint over plain http to localhostx",
        &[(
            "    adminCidrs: [203.0.113.0/24]\n",
            "    adminCidrs: [203.0.113.0/24]\n    endpoint: http://localhostx #<\n",
        )],
        "backends.aws.endpoint",
        "`localhostx` is another host",
    ),
    aws(
        "AWS even control planes",
        &[("        - id: 3\n", ""), ("        - id: 1\n        - id: 2", "        - id: 1 #<\n        - id: 2")],
        "cluster.nodes.master.instances",
        "even number",
    ),
    aws(
        "AWS pod subnet inside the VPC",
        &[("  version: v1.35.0", "  version: v1.35.0\n  podSubnet: 10.0.0.0/16 #<")],
        "kubernetes.podSubnet",
        "overlaps the VPC",
    ),
    case(
        "image repository with a scheme",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  imageRepository: https://registry.example.com #<\n")],
        "kubernetes.imageRepository",
        "not a registry",
    ),
    // Injection through the package mirror: it is written into apt's sources list (as root,
    // on every node) and into the node's shell.
    case(
        "package mirror with a line break: a second, trusted apt source",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\n  packageMirror: \"http://mirror.example.com/k8s\\ndeb [trusted=yes] http://evil.example/ /\" #<\n",
        )],
        "kubernetes.packageMirror",
        "contains a line break (character 30)",
    ),
    case(
        "package mirror with a space",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  packageMirror: \"http://mirror.example.com/a b\" #<\n")],
        "kubernetes.packageMirror",
        "contains a space",
    ),
    case(
        "package mirror with a quote",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\n  packageMirror: \"http://mirror.example.com/'$(reboot)'\" #<\n",
        )],
        "kubernetes.packageMirror",
        "contains `'`",
    ),
    case(
        "package mirror with a command substitution",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\n  packageMirror: \"http://mirror.example.com/$(reboot)\" #<\n",
        )],
        "kubernetes.packageMirror",
        "contains `$`",
    ),
    case(
        "package mirror with a command substitution in its host",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\n  packageMirror: \"http://mirror$(reboot).example.com/\" #<\n",
        )],
        "kubernetes.packageMirror",
        "is neither a DNS name nor an IP address",
    ),
    case(
        "package mirror with credentials",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  packageMirror: https://me:secret@mirror.example.com #<\n")],
        "kubernetes.packageMirror",
        "carries credentials",
    ),
    case(
        "egress origin of a backend with a line break",
        &[(
            "kubernetes:\n",
            "backends:\n  mine:\n    egress:\n      - https://api.example.com\n      - \"https://api.example.com\\nhttps://evil.example\" #<\nkubernetes:\n",
        )],
        "backends.mine.egress[1]",
        "contains a line break",
    ),
    case(
        "egress origin of a backend with credentials",
        &[("kubernetes:\n", "backends:\n  mine:\n    egress: [\"https://me@api.example.com\"] #<\nkubernetes:\n")],
        "backends.mine.egress[0]",
        "carries credentials",
    ),
    case(
        "mirror over plain HTTP without saying so",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\n  registryMirrors:\n    - registry: docker.io\n      endpoint: http://mirror.example.com #<\n",
        )],
        "kubernetes.registryMirrors[0].endpoint",
        "plainHttp: true",
    ),
    case(
        "mirror endpoint with credentials",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\n  registryMirrors:\n    - registry: docker.io\n      endpoint: https://me:pw@mirror.example.com #<\n",
        )],
        "kubernetes.registryMirrors[0].endpoint",
        "without credentials",
    ),
    case(
        "mirror of a registry that is no name",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\n  registryMirrors:\n    - registry: \"docker.io; rm -rf /\" #<\n      endpoint: https://mirror.example.com\n",
        )],
        "kubernetes.registryMirrors[0].registry",
        "not a registry name",
    ),
    case(
        "one registry mirrored twice",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\n  registryMirrors:\n    - {registry: docker.io, endpoint: \"https://a.example.com\"}\n    - {registry: docker.io, endpoint: \"https://b.example.com\"} #<\n",
        )],
        "kubernetes.registryMirrors[1].registry",
        "has a mirror already",
    ),
    case(
        "an image URL with a shell in its path",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\nbackends:\n  libvirt:\n    image:\n      url: \"https://images.example.com/$(reboot).qcow2\" #<\n      sha256: 0000000000000000000000000000000000000000000000000000000000000000\n",
        )],
        "backends.libvirt.image.url",
        "not an http(s) URL",
    ),
    case(
        "one registry mirrored twice after an invalid mirror",
        &[(
            "  version: v1.35.0\n",
            "  version: v1.35.0\n  registryMirrors:\n    - {registry: quay.io, endpoint: \"https://me:pw@q.example.com\"}\n    - {registry: docker.io, endpoint: \"https://a.example.com\"}\n    - {registry: docker.io, endpoint: \"https://b.example.com\"} #<\n",
        )],
        "kubernetes.registryMirrors[2].registry",
        "has a mirror already",
    ),
    case(
        "containerd from a mirror without one",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  containerd:\n    source: mirror #<\n")],
        "kubernetes.containerd.source",
        "packageMirror",
    ),
    case(
        "a preflight check that is no name",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  ignorePreflightErrors: [\"Swap; reboot\"] #<\n")],
        "kubernetes.ignorePreflightErrors[0]",
        "not a kubeadm preflight check",
    ),
    case(
        "kube-proxy field that is no field",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  kubeProxy:\n    conntrack-max: 0 #<\n")],
        "kubernetes.kubeProxy.conntrack-max",
        "not a KubeProxyConfiguration field",
    ),
    case(
        "an upgrade that would upgrade no worker",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  upgrade:\n    maxUnavailableWorkers: 0 #<\n")],
        "kubernetes.upgrade.maxUnavailableWorkers",
        "never upgrade a worker",
    ),
    case(
        "all mixed with named preflight checks",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  ignorePreflightErrors: [all, Swap] #<\n")],
        "kubernetes.ignorePreflightErrors",
        "cannot be mixed",
    ),
    case(
        "kubelet field that is no field",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  kubelet:\n    \"fail-cgroup-v1\": false #<\n")],
        "kubernetes.kubelet.fail-cgroup-v1",
        "not a KubeletConfiguration field",
    ),
    case(
        "kubelet kind",
        &[("  version: v1.35.0\n", "  version: v1.35.0\n  kubelet:\n    kind: Pod #<\n")],
        "kubernetes.kubelet.kind",
        "hacluster's to set",
    ),
    case(
        "a node label the kubelet may not set",
        &[(
            "          ip: 192.168.113.20\n",
            "          ip: 192.168.113.20\n          labels:\n            node-role.kubernetes.io/worker: \"\" #<\n",
        )],
        "cluster.nodes.worker.instances[0].labels.node-role.kubernetes.io/worker",
        "the kubelet refuses",
    ),
];

fn build(c: &Case) -> (String, usize) {
    let mut text = c.base.to_string();
    for (find, replace) in c.edits {
        assert_eq!(text.matches(find).count(), 1, "case `{}`: edit target must occur once: {find:?}", c.name);
        text = text.replacen(find, replace, 1);
    }
    let line = text.lines().position(|l| l.contains("#<")).map(|i| i + 1).unwrap_or_else(|| default_line(c, &text));
    (text, line)
}

/// Cases without a marker point at the mapping that lacks a field: its first key.
fn default_line(c: &Case, text: &str) -> usize {
    match c.path {
        "cluster.name" => text.lines().position(|l| l.starts_with("  network:")).expect("network line") + 1,
        "cluster.network.bridge" => text.lines().position(|l| l.contains("mode: bridge")).expect("mode line") + 1,
        p => panic!("case `{}` ({p}) needs a #< marker", c.name),
    }
}

