package main

import (
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The apt mirror of an air-gapped site, in pkgs.k8s.io's layout: a flat repository per minor
// (`<mirror>/v1.N/deb/`: kubeadm, kubelet with its unit and kubeadm drop-in, kubectl), one for
// containerd (`<mirror>/containerd/deb/`: containerd.io 2.x, as Docker's repository names it),
// each signed (InRelease, Release.gpg, and Release.key to trust), and the network plugin's
// manifest (`<mirror>/cni/kube-router.yaml`, upstream's, from its Go module). Built by dpkg-deb
// and gpg from the binaries scripts/build-k8s made; cached until one of them changes.

const kubeletUnit = `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`

// The drop-in kubeadm's documentation describes: kubeadm writes the flags and the config the
// unit reads.
const kubeadmDropIn = `[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

const (
	containerdVersion = "v2.4.2"
	kubeRouterVersion = "v2.1.0"
)

// A package to build: name, version, dependencies, and files (path in the package → source
// file or, with content set, literal content).
type debFile struct {
	path, src, content string
	mode               os.FileMode
}

type deb struct {
	name, version, depends, description string
	files                               []debFile
}

func goModCache() string { return filepath.Join(cacheDir(), "go", "mod") }

// mirrorPackages: what goes in each repository directory.
func mirrorPackages(b Builds) (map[string][]deb, error) {
	repos := map[string][]deb{}
	for _, v := range b.kubeVersions() {
		pkgVersion := strings.TrimPrefix(v, "v") + "-1.1"
		bin := func(name string) (debFile, error) {
			p, err := b.bin(v, name)
			return debFile{path: "usr/bin/" + name, src: p, mode: 0o755}, err
		}
		var debs []deb
		for _, name := range []string{"kubeadm", "kubelet", "kubectl"} {
			f, err := bin(name)
			if err != nil {
				return nil, err
			}
			d := deb{name: name, version: pkgVersion, files: []debFile{f}}
			switch name {
			case "kubeadm":
				d.depends, d.description = "kubelet, kubectl", "Command-line utility for administering a Kubernetes cluster"
			case "kubelet":
				d.depends, d.description = "iptables, conntrack, iproute2, mount, containernetworking-plugins", "Node agent for Kubernetes clusters"
				d.files = append(d.files,
					debFile{path: "usr/lib/systemd/system/kubelet.service", content: kubeletUnit, mode: 0o644},
					debFile{path: "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", content: kubeadmDropIn, mode: 0o644})
			default:
				d.description = "Command-line utility for interacting with a Kubernetes cluster"
			}
			debs = append(debs, d)
		}
		repos[minor(v)+"/deb"] = debs
	}
	label := "containerd-" + containerdVersion
	c := deb{name: "containerd.io", version: strings.TrimPrefix(containerdVersion, "v") + "-1", depends: "runc",
		description: "An open and reliable container runtime"}
	for _, name := range []string{"containerd", "containerd-shim-runc-v2", "ctr"} {
		p, err := b.bin(label, name)
		if err != nil {
			return nil, err
		}
		c.files = append(c.files, debFile{path: "usr/bin/" + name, src: p, mode: 0o755})
	}
	unit, err := os.ReadFile(filepath.Join(goModCache(), "github.com/containerd/containerd/v2@"+containerdVersion, "containerd.service"))
	if err != nil {
		return nil, fmt.Errorf("containerd's unit from its module: %v", err)
	}
	c.files = append(c.files, debFile{path: "usr/lib/systemd/system/containerd.service",
		content: strings.ReplaceAll(string(unit), "/usr/local/bin/containerd", "/usr/bin/containerd"), mode: 0o644})
	repos["containerd/deb"] = []deb{c}
	return repos, nil
}

// fingerprint of everything a build reads: each source file's path, size and time.
func fingerprint(repos map[string][]deb, extra ...string) string {
	h := sha256.New()
	keys := make([]string, 0, len(repos))
	for k := range repos {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, d := range repos[k] {
			fmt.Fprintf(h, "%s %s %s %s\n", k, d.name, d.version, d.depends)
			for _, f := range d.files {
				fmt.Fprintf(h, "%s %s %o %x\n", f.path, f.src, f.mode, sha256.Sum256([]byte(f.content)))
				if st, err := os.Stat(f.src); err == nil && f.src != "" {
					fmt.Fprintf(h, "%d %d\n", st.Size(), st.ModTime().UnixNano())
				}
			}
		}
	}
	for _, e := range extra {
		fmt.Fprintln(h, e)
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:6])
}

func buildMirror(b Builds) (string, error) {
	repos, err := mirrorPackages(b)
	if err != nil {
		return "", err
	}
	manifest := filepath.Join(goModCache(), "github.com/cloudnativelabs/kube-router/v2@"+kubeRouterVersion, "daemonset", "kubeadm-kuberouter.yaml")
	dir := labCache("mirror-" + fingerprint(repos, manifest, "layout 1"))
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return dir, nil
	}
	say("building the apt mirror (once; cached in %s)", dir)
	_ = os.RemoveAll(dir)
	key, err := signingKey()
	if err != nil {
		return "", err
	}
	for repo, debs := range repos {
		out := filepath.Join(dir, repo)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return "", err
		}
		for _, d := range debs {
			if err := buildDeb(d, out); err != nil {
				return "", err
			}
		}
		if err := indexRepo(out, key); err != nil {
			return "", err
		}
	}
	// The network plugin's manifest, as upstream publishes it (its Go module carries it).
	if err := os.MkdirAll(filepath.Join(dir, "cni"), 0o755); err != nil {
		return "", err
	}
	if err := copyFile(manifest, filepath.Join(dir, "cni", "kube-router.yaml"), 0o644); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "done"), nil, 0o644)
}

func buildDeb(d deb, out string) error {
	stage, err := os.MkdirTemp("", "lab-deb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	var size int64
	for _, f := range d.files {
		dst := filepath.Join(stage, f.path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if f.src != "" {
			if err := copyFile(f.src, dst, f.mode); err != nil {
				return err
			}
		} else if err := os.WriteFile(dst, []byte(f.content), f.mode); err != nil {
			return err
		}
		if st, err := os.Stat(dst); err == nil {
			size += st.Size()
		}
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: hacluster lab <lab@hacluster.invalid>\nInstalled-Size: %d\n", d.name, d.version, size/1024)
	if d.depends != "" {
		control += "Depends: " + d.depends + "\n"
	}
	control += "Section: admin\nPriority: optional\nDescription: " + d.description + "\n Built by the hacluster lab from the upstream Go module.\n"
	if err := os.MkdirAll(filepath.Join(stage, "DEBIAN"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stage, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		return err
	}
	// Uncompressed: the mirror is next door, and compressing 300 MB of binaries costs minutes.
	file := filepath.Join(out, fmt.Sprintf("%s_%s_amd64.deb", d.name, d.version))
	return run("dpkg-deb", "-Znone", "--root-owner-group", "--build", stage, file)
}

// indexRepo writes Packages, Release (with the hashes apt checks), InRelease, Release.gpg and
// Release.key.
func indexRepo(dir, key string) error {
	pkgs, err := outputIn(dir, "dpkg-scanpackages", "--multiversion", ".", "/dev/null")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), []byte(pkgs), 0o644); err != nil {
		return err
	}
	md := md5.Sum([]byte(pkgs))
	sha := sha256.Sum256([]byte(pkgs))
	release := fmt.Sprintf("Origin: hacluster lab\nLabel: hacluster lab\nArchitectures: amd64\nDate: %s\nMD5Sum:\n %x %d Packages\nSHA256:\n %x %d Packages\n",
		time.Now().UTC().Format(time.RFC1123), md, len(pkgs), sha, len(pkgs))
	if err := os.WriteFile(filepath.Join(dir, "Release"), []byte(release), 0o644); err != nil {
		return err
	}
	g := gpgArgs()
	if err := run("gpg", append(g, "--local-user", key, "--clearsign", "-o", filepath.Join(dir, "InRelease"), filepath.Join(dir, "Release"))...); err != nil {
		return err
	}
	if err := run("gpg", append(g, "--local-user", key, "--armor", "--detach-sign", "-o", filepath.Join(dir, "Release.gpg"), filepath.Join(dir, "Release"))...); err != nil {
		return err
	}
	pub, err := output("gpg", append(g, "--armor", "--export", key)...)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "Release.key"), []byte(pub), 0o644)
}

func gpgArgs() []string {
	return []string{"--batch", "--yes", "--quiet", "--homedir", labCache("gpg")}
}

// signingKey is the lab's repository key (made once): its fingerprint.
func signingKey() (string, error) {
	if err := os.MkdirAll(labCache("gpg"), 0o700); err != nil {
		return "", err
	}
	const uid = "hacluster lab mirror <lab@hacluster.invalid>"
	list := func() string {
		out, _ := output("gpg", append(gpgArgs(), "--with-colons", "--list-secret-keys", uid)...)
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
				return f[9]
			}
		}
		return ""
	}
	if fpr := list(); fpr != "" {
		return fpr, nil
	}
	if err := run("gpg", append(gpgArgs(), "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "0")...); err != nil {
		return "", err
	}
	if fpr := list(); fpr != "" {
		return fpr, nil
	}
	return "", fmt.Errorf("gpg made no key")
}

func outputIn(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stderr = dir, os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out), nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
