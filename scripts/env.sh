# Shared settings for the scripts; sourced, not run.
# One target directory outside the checkout, so CI runs on the same machine reuse the build
# (a clean build of wasmtime and the AWS SDK takes half an hour on two cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hacluster/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO
