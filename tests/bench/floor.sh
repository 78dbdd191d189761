#!/usr/bin/env bash
# The floor of the bootstrap benchmark (tests/e2e/real_bench.rs): what `hacluster bootstrap`
# does to a lab, done by the plainest script. The same files (`hacluster plan --out`: each
# node's prepare.sh and kubeadm config), the same kubeadm commands, in the same order (prepare
# every node at once; init; the CNI; control planes one at a time; workers at once; wait for
# Ready; fetch the kubeconfig), over plain ssh: no job records, no resume, no checks beyond
# what kubeadm does itself. Prints `step NAME SECONDS` per step and `total SECONDS`.
#
#   floor.sh PLAN_DIR KEY KNOWN_HOSTS NODES MIRROR OUT
#
# NODES: a file of `name address role` lines (role: init, control-plane, worker), in join
# order. MIRROR: the package mirror (for the CNI manifest). OUT: where the kubeconfig goes.
set -euo pipefail
plan=$1 key=$2 known=$3 nodes=$4 mirror=$5 out=$6
on() {
  local ip=$1
  shift
  ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$known" -i "$key" "k8s@$ip" "$@"
}
now() { date +%s.%N; }
start=$(now)
t=$start
step() {
  local n
  n=$(now)
  awk -v a="$n" -v b="$t" -v s="$1" 'BEGIN { printf "step %s %.1f\n", s, a - b }'
  t=$n
}
mapfile -t all < "$nodes"
field() { echo "$1" | awk -v f="$2" '{ print $f }'; }

# The secrets hacluster generates, of kubeadm's shapes, in place of plan --out's placeholders.
token="$(openssl rand -hex 3).$(openssl rand -hex 8)"
certkey=$(openssl rand -hex 32)
zeros=$(printf '0%.0s' $(seq 64))
fill() { sed -e "s/xxxxxx\.placeholdertoken/$token/g" -e "s/$zeros/$certkey/g" -e "s/sha256:$certkey/sha256:$cahash/g" "$1"; }
cahash=""

for line in "${all[@]}"; do
  name=$(field "$line" 1) ip=$(field "$line" 2)
  on "$ip" sudo bash -s < "$plan/$name/prepare.sh" >/dev/null &
done
wait
step prepare

init=${all[0]}
iname=$(field "$init" 1) iip=$(field "$init" 2)
kubectl="sudo kubectl --kubeconfig /etc/kubernetes/admin.conf"
fill "$plan/$iname/kubeadm-init.yaml" | on "$iip" "sudo install -d -m 0700 /etc/kubernetes/hacluster && sudo tee /etc/kubernetes/hacluster/init.yaml >/dev/null && sudo chmod 600 /etc/kubernetes/hacluster/init.yaml"
on "$iip" sudo kubeadm init --config /etc/kubernetes/hacluster/init.yaml --upload-certs >/dev/null
cahash=$(on "$iip" "sudo openssl x509 -pubkey -noout -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex | sed 's/^.*= *//'")
step init

# The API through the endpoint answers once the balancers' health checks see it.
on "$iip" "curl -fsSL $mirror/cni/kube-router.yaml -o /tmp/cni.yaml && sed -i -e 's|image: docker.io/cloudnativelabs/kube-router\$|image: docker.io/cloudnativelabs/kube-router:v2.1.0|' /tmp/cni.yaml && until $kubectl apply -f /tmp/cni.yaml >/dev/null 2>&1; do sleep 0.5; done"
step cni

join() {
  local name=$1 ip=$2
  # The placeholder CA hash is zeros, which the first sed already made the certificate key.
  fill "$plan/$name/kubeadm-join.yaml" | on "$ip" "sudo install -d -m 0700 /etc/kubernetes/hacluster && sudo tee /etc/kubernetes/hacluster/join.yaml >/dev/null && sudo chmod 600 /etc/kubernetes/hacluster/join.yaml"
  on "$ip" sudo kubeadm join --config /etc/kubernetes/hacluster/join.yaml >/dev/null
}
for line in "${all[@]:1}"; do
  [ "$(field "$line" 3)" = control-plane ] || continue
  join "$(field "$line" 1)" "$(field "$line" 2)"
done
step control-plane-joins
for line in "${all[@]:1}"; do
  [ "$(field "$line" 3)" = worker ] || continue
  join "$(field "$line" 1)" "$(field "$line" 2)" &
done
wait
step worker-joins

want=${#all[@]}
until [ "$(on "$iip" "$kubectl get nodes --no-headers" | awk '$2 == "Ready"' | wc -l)" -eq "$want" ]; do sleep 1; done
step ready
on "$iip" sudo cat /etc/kubernetes/admin.conf > "$out"
chmod 600 "$out"
step kubeconfig
awk -v a="$(now)" -v b="$start" 'BEGIN { printf "total %.1f\n", a - b }'
