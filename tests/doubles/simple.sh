#!/bin/sh
# TEST DOUBLES of the package and kernel tools the node preparation calls (apt-get, apt-mark,
# dpkg-query, modprobe, sysctl, swapoff, timedatectl, containerd, and systemctl for anything
# but starting, stopping and asking about the kubelet). Plain sh, because 20 namespace nodes
# share two CPUs in the tests; they record what was done under /var/lib/hacluster-doubles and
# log every call like double.py does.
set -u
STATE=/var/lib/hacluster-doubles
LOG=/var/log/hacluster-doubles/calls.jsonl
# Shell expansions rather than basename/dirname/mkdir: every fork counts with 20 nodes at once.
tool=${0##*/}
start=$(date +%s.%N)
[ -d "$STATE" ] && [ -d "${LOG%/*}" ] || mkdir -p "$STATE" "${LOG%/*}"

log() {
  rc=$1
  shift
  # Arguments as a JSON list (they contain no quotes or backslashes in our scripts).
  args=""
  for a in "$@"; do args="$args${args:+, }\"$a\""; done
  printf '{"tool": "%s", "args": [%s], "start": %s, "end": %s, "rc": %s}\n' "$tool" "$args" "$start" "$(date +%s.%N)" "$rc" >> "$LOG"
  exit "$rc"
}

case "$tool" in
  modprobe) echo "$*" | awk '{print $NF}' >> "$STATE/modules"; log 0 "$@" ;;
  swapoff) touch "$STATE/swapoff"; log 0 "$@" ;;
  sysctl) ls /etc/sysctl.d > "$STATE/sysctl"; log 0 "$@" ;;
  timedatectl) echo yes; log 0 "$@" ;;
  containerd)
    case "$*" in
      --version) echo "containerd github.com/containerd/containerd/v2 v2.4.2 0000000" ;;
      # What it runs with: the config hacluster wrote and its drop-ins.
      "config dump") cat /etc/containerd/config.toml /etc/containerd/conf.d/*.toml 2>/dev/null ;;
      *) echo "containerd double: unsupported: $*" >&2; log 1 "$@" ;;
    esac
    log 0 "$@" ;;
  dpkg-query)
    pkg=$(echo "$*" | awk '{print $NF}')
    v=$(awk -v p="$pkg" '$1 == p {print $2}' "$STATE/dpkg" 2>/dev/null | tail -n1)
    if [ -z "$v" ]; then echo "dpkg-query: no packages found matching $pkg" >&2; log 1 "$@"; fi
    case "$*" in *Status*) printf 'install ok installed' ;; *) printf '%s' "$v" ;; esac
    log 0 "$@" ;;
  apt-mark) echo "$*" >> "$STATE/holds"; log 0 "$@" ;;
  apt-get)
    case " $* " in
      *" update "*)
        for repo in $(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\).*/\2/p' /etc/apt/sources.list.d/*.list 2>/dev/null); do
          if ! curl -fsS --max-time 5 -o /dev/null "${repo%/}/Release.key"; then
            echo "Err:1 $repo InRelease" >&2; echo "E: Failed to fetch $repo/InRelease" >&2; log 100 "$@"
          fi
          echo "$repo" > "$STATE/apt-repos"
        done
        echo "Reading package lists... Done"; log 0 "$@" ;;
      *" install "*)
        [ -s "$STATE/apt-repos" ] || { echo "E: Unable to locate package kubeadm" >&2; log 100 "$@"; }
        for a in "$@"; do
          case "$a" in
            -*|install) ;;
            *=*) name=${a%%=*}; ver=${a#*=}; ver=${ver%\*}; ver=${ver%-}; echo "$name $ver-1.1" >> "$STATE/dpkg" ;;
            *) echo "$a 1.7.24-1" >> "$STATE/dpkg" ;;
          esac
        done
        echo "Setting up packages... Done"; log 0 "$@" ;;
      *) echo "apt-get double: unsupported: $*" >&2; log 100 "$@" ;;
    esac ;;
  systemctl)
    # The kubelet double is a process that double.py supervises; enabling it starts nothing.
    case " $* " in
      " enable kubelet "|" disable kubelet ") echo "$*" >> "$STATE/services"; log 0 "$@" ;;
      *" kubelet"*) exec /usr/bin/python3 "$(dirname "$(readlink -f "$0")")/double.py" --as systemctl "$@" ;;
      *) echo "$*" >> "$STATE/services"; log 0 "$@" ;;
    esac ;;
  *) echo "unknown double $tool" >&2; exit 127 ;;
esac
