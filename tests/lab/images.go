package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The lab registry holds every image kubeadm lists for each pinned version (under the names
// `kubeadm config images list --image-repository registry.lab:5000` prints), the network
// plugin's (as `cloudnativelabs/kube-router`, which the nodes' docker.io mirror serves) and the
// tests' web workload (web/). Each image is the binaries scripts/build-k8s made, on an empty base;
// kube-proxy's and kube-router's carry iptables, ipset, conntrack and ip with their libraries
// from the nodes' Debian root, and kube-router's busybox for its manifest's shell. Images are
// pushed with go-containerregistry (crane's library) into a registry store cached under
// ~/.cache/hacluster/lab/registry, which every lab's registry serves read-only.

type entry struct {
	path, src, link string
	mode            os.FileMode
	dir             bool
}

type image struct {
	repo, tag  string
	entries    []entry
	entrypoint []string
}

const pathEnv = "PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin"

func binEntry(src, dst string) entry { return entry{path: dst, src: src, mode: 0o755} }

var imageLine = regexp.MustCompile(`^registry\.lab:5000/([a-z0-9-]+):([A-Za-z0-9._-]+)$`)

// images lists what the registry must hold.
func images(b Builds, root string) ([]image, error) {
	tools, err := toolEntries(root, false)
	if err != nil {
		return nil, err
	}
	toolsSh, err := toolEntries(root, true)
	if err != nil {
		return nil, err
	}
	var out []image
	seen := map[string]bool{}
	for _, v := range b.kubeVersions() {
		kubeadm, err := b.bin(v, "kubeadm")
		if err != nil {
			return nil, err
		}
		list, err := output(kubeadm, "config", "images", "list", "--kubernetes-version", v, "--image-repository", registryName+":5000")
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			m := imageLine.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("kubeadm %s lists an image the lab cannot name: %q", v, line)
			}
			repo, tag := m[1], m[2]
			if seen[repo+":"+tag] {
				continue
			}
			seen[repo+":"+tag] = true
			img := image{repo: repo, tag: tag}
			switch repo {
			case "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy":
				p, err := b.bin(v, repo)
				if err != nil {
					return nil, err
				}
				img.entries = []entry{binEntry(p, "usr/local/bin/"+repo)}
				img.entrypoint = []string{"/usr/local/bin/" + repo}
				if repo == "kube-proxy" {
					img.entries = append(img.entries, tools...)
				}
			case "etcd":
				label := "etcd-v" + strings.SplitN(tag, "-", 2)[0]
				for _, bin := range []string{"etcd", "etcdctl", "etcdutl"} {
					p, err := b.bin(label, bin)
					if err != nil {
						return nil, err
					}
					img.entries = append(img.entries, binEntry(p, "usr/local/bin/"+bin))
				}
				img.entrypoint = []string{"/usr/local/bin/etcd"}
			case "coredns":
				p, err := b.bin("coredns-"+tag, "coredns")
				if err != nil {
					return nil, err
				}
				img.entries, img.entrypoint = []entry{binEntry(p, "coredns")}, []string{"/coredns"}
			case "pause":
				p, err := b.bin("pause-"+tag, "pause")
				if err != nil {
					return nil, err
				}
				img.entries, img.entrypoint = []entry{binEntry(p, "pause")}, []string{"/pause"}
			default:
				return nil, fmt.Errorf("kubeadm %s lists %s, which the lab does not build", v, repo)
			}
			out = append(out, img)
		}
	}
	kr, err := b.bin("kube-router-"+kubeRouterVersion, "kube-router")
	if err != nil {
		return nil, err
	}
	out = append(out, image{repo: "cloudnativelabs/kube-router", tag: kubeRouterVersion,
		entries:    append([]entry{binEntry(kr, "usr/local/bin/kube-router")}, toolsSh...),
		entrypoint: []string{"/usr/local/bin/kube-router"}})
	web, err := buildWeb()
	if err != nil {
		return nil, err
	}
	out = append(out, image{repo: "hacluster/web", tag: "1", entries: []entry{binEntry(web, "web")}, entrypoint: []string{"/web"}})
	return out, nil
}

// buildWeb builds the tests' workload (web/, beside this file) into the lab cache.
func buildWeb() (string, error) {
	repo, err := repoRoot()
	if err != nil {
		return "", err
	}
	out := labCache("bin", "web")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out+".new", "./web")
	cmd.Dir = filepath.Join(repo, "tests", "lab")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the web workload: %v: %s", err, b)
	}
	// Replaced only when it changed: its time is part of the image's fingerprint.
	a, _ := os.ReadFile(out)
	b, err := os.ReadFile(out + ".new")
	if err != nil {
		return "", err
	}
	if string(a) == string(b) {
		return out, os.Remove(out + ".new")
	}
	return out, os.Rename(out+".new", out)
}

// busyboxEntries: Debian's static busybox and the applets a manifest's shell or a test uses.
func busyboxEntries(root string) []entry {
	e := []entry{binEntry(filepath.Join(root, "bin", "busybox"), "bin/busybox")}
	for _, a := range []string{"sh", "cp", "mv", "rm", "cat", "ls", "mkdir", "test", "[", "echo", "sleep", "hostname", "httpd", "wget", "nslookup", "grep", "sort", "uniq", "seq", "head", "tail", "wc", "date", "true", "false", "env", "id", "ps"} {
		e = append(e, entry{path: "bin/" + a, link: "busybox"})
	}
	return e
}

// toolEntries: iptables (nft), ipset, conntrack and ip from the root, with every library they
// and iptables' extensions load, at their paths; with `shell`, busybox too.
func toolEntries(root string, shell bool) ([]entry, error) {
	bins := []string{"/usr/sbin/xtables-nft-multi", "/usr/sbin/ipset", "/usr/sbin/conntrack", "/usr/bin/ip"}
	exts, _ := filepath.Glob(filepath.Join(root, "usr/lib/x86_64-linux-gnu/xtables/*.so"))
	libs := map[string]bool{}
	var e []entry
	for _, b := range bins {
		e = append(e, binEntry(filepath.Join(root, b), strings.TrimPrefix(b, "/")))
	}
	for _, x := range exts {
		rel := strings.TrimPrefix(x, root)
		e = append(e, entry{path: strings.TrimPrefix(rel, "/"), src: x, mode: 0o644})
	}
	targets := append([]string{}, bins...)
	for _, x := range exts {
		targets = append(targets, strings.TrimPrefix(x, root))
	}
	out, err := output("chroot", append([]string{root, "ldd"}, targets...)...)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for _, w := range f {
			if strings.HasPrefix(w, "/") && !strings.HasSuffix(w, ":") {
				libs[w] = true
			}
		}
	}
	names := make([]string, 0, len(libs))
	for l := range libs {
		names = append(names, l)
	}
	sort.Strings(names)
	for _, l := range names {
		e = append(e, entry{path: strings.TrimPrefix(l, "/"), src: filepath.Join(root, l), mode: 0o755})
	}
	for _, t := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		e = append(e, entry{path: "usr/sbin/" + t, link: "xtables-nft-multi"})
	}
	for _, f := range []string{"etc/protocols", "etc/services", "etc/ethertypes"} {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			e = append(e, entry{path: f, src: filepath.Join(root, f), mode: 0o644})
		}
	}
	if shell {
		e = append(e, busyboxEntries(root)...)
	}
	return e, nil
}

// layerTar writes the entries as one tar (parents first, fixed times, root owner).
func layerTar(entries []entry, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	var addDir func(d string) error
	addDir = func(d string) error {
		if d == "." || d == "" || dirs[d] {
			return nil
		}
		if err := addDir(filepath.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: time.Unix(0, 0)})
	}
	for _, e := range entries {
		if err := addDir(filepath.Dir(e.path)); err != nil {
			return err
		}
		hdr := &tar.Header{Name: e.path, Mode: int64(e.mode), ModTime: time.Unix(0, 0)}
		switch {
		case e.dir:
			dirs[e.path] = true
			hdr.Typeflag, hdr.Name = tar.TypeDir, e.path+"/"
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		case e.link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, e.link, 0o777
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		default:
			src, err := os.Open(e.src)
			if err != nil {
				return err
			}
			st, err := src.Stat()
			if err != nil {
				src.Close()
				return err
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				src.Close()
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func (img image) fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s:%s %v\n", img.repo, img.tag, img.entrypoint)
	for _, e := range img.entries {
		fmt.Fprintf(h, "%s %s %s %o %v", e.path, e.src, e.link, e.mode, e.dir)
		if st, err := os.Stat(e.src); err == nil && e.src != "" {
			fmt.Fprintf(h, " %d %d", st.Size(), st.ModTime().UnixNano())
		}
		fmt.Fprintln(h)
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}

// registryStore fills the cached registry store with every image that is missing or whose
// inputs changed, through a registry of our own on a loopback port; it returns the store.
func registryStore(b Builds, root string) (string, error) {
	store := labCache("registry")
	stampFile := labCache("registry-images.json")
	stamps := map[string]string{}
	if raw, err := os.ReadFile(stampFile); err == nil {
		_ = json.Unmarshal(raw, &stamps)
	}
	imgs, err := images(b, root)
	if err != nil {
		return "", err
	}
	var todo []image
	for _, img := range imgs {
		if stamps[img.repo+":"+img.tag] != img.fingerprint() {
			todo = append(todo, img)
		}
	}
	if len(todo) == 0 {
		return store, nil
	}
	say("pushing %d images into the lab registry (once; cached in %s)", len(todo), store)
	reg, err := b.bin("registry-v3.1.2", "registry")
	if err != nil {
		return "", err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	cfg := labCache("registry-push.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", store, addr)), 0o600); err != nil {
		return "", err
	}
	log, err := os.Create(labCache("registry-push.log"))
	if err != nil {
		return "", err
	}
	defer log.Close()
	cmd := exec.Command(reg, "serve", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitHTTP("http://" + addr + "/v2/"); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp("", "lab-layers-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for _, img := range todo {
		t0 := time.Now()
		file := filepath.Join(tmp, strings.ReplaceAll(img.repo, "/", "_")+".tar")
		if err := layerTar(img.entries, file); err != nil {
			return "", fmt.Errorf("%s: %v", img.repo, err)
		}
		layer, err := tarball.LayerFromFile(file, tarball.WithCompressionLevel(1))
		if err != nil {
			return "", err
		}
		i, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			return "", err
		}
		cf, err := i.ConfigFile()
		if err != nil {
			return "", err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		cf.Config = v1.Config{Entrypoint: img.entrypoint, Env: []string{pathEnv}}
		i, err = mutate.ConfigFile(i, cf)
		if err != nil {
			return "", err
		}
		ref, err := name.ParseReference(addr+"/"+img.repo+":"+img.tag, name.Insecure)
		if err != nil {
			return "", err
		}
		if err := remote.Write(ref, i); err != nil {
			return "", fmt.Errorf("push %s: %v", ref, err)
		}
		stamps[img.repo+":"+img.tag] = img.fingerprint()
		raw, _ := json.MarshalIndent(stamps, "", "  ")
		if err := os.WriteFile(stampFile, raw, 0o600); err != nil {
			return "", err
		}
		say("  %s:%s pushed in %.1f s", img.repo, img.tag, time.Since(t0).Seconds())
	}
	return store, nil
}
