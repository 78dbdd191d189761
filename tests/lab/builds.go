package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Builds are the binaries scripts/build-k8s made: its `label dir` lines (`v1.37.2 …/bin`,
// `etcd-v3.7.0 …/bin`).
type Builds map[string]string

func repoRoot() (string, error) {
	r := os.Getenv("HACLUSTER_REPO")
	if r == "" {
		return "", errors.New("HACLUSTER_REPO is not set (run the lab through scripts/lab)")
	}
	return r, nil
}

func cacheDir() string {
	if c := os.Getenv("HACLUSTER_CACHE"); c != "" {
		return c
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "hacluster")
}

func labCache(p ...string) string {
	return filepath.Join(append([]string{cacheDir(), "lab"}, p...)...)
}

func loadBuilds() (Builds, error) {
	repo, err := repoRoot()
	if err != nil {
		return nil, err
	}
	out, err := output(filepath.Join(repo, "scripts", "build-k8s"), "--list")
	if err != nil {
		return nil, fmt.Errorf("the Kubernetes binaries are not all built (run scripts/build-k8s): %v", err)
	}
	b := Builds{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if label, dir, ok := strings.Cut(line, " "); ok {
			b[label] = dir
		}
	}
	return b, nil
}

// bin is the path of binary `name` of build `label`.
func (b Builds) bin(label, name string) (string, error) {
	dir, ok := b[label]
	if !ok {
		return "", fmt.Errorf("nothing built for %s (tests/k8s pins it? run scripts/build-k8s)", label)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s of %s: %v", name, label, err)
	}
	return p, nil
}

// kubeVersions are the full Kubernetes builds (with a kubelet), newest first as pinned.
func (b Builds) kubeVersions() []string {
	var vs []string
	for label, dir := range b {
		if strings.HasPrefix(label, "v") {
			if _, err := os.Stat(filepath.Join(dir, "kubelet")); err == nil {
				vs = append(vs, label)
			}
		}
	}
	sortVersions(vs)
	return vs
}

// minor of `v1.N.P`.
func minor(v string) string {
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) < 2 {
		return v
	}
	return "v" + parts[0] + "." + parts[1]
}

// sortVersions sorts `v1.N.P` versions newest first.
func sortVersions(vs []string) {
	key := func(v string) (k [3]int) {
		for i, p := range strings.Split(strings.TrimPrefix(v, "v"), ".") {
			if i < 3 {
				k[i], _ = strconv.Atoi(p)
			}
		}
		return k
	}
	sort.Slice(vs, func(i, j int) bool {
		a, b := key(vs[i]), key(vs[j])
		for x := range a {
			if a[x] != b[x] {
				return a[x] > b[x]
			}
		}
		return false
	})
}
