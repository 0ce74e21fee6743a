#!/usr/bin/env bash
# The main job: build oxrun, run a busybox container, then walk a second one
# through create / start / state / kill / delete. Then Kubernetes' view: a
# private containerd 2.1.9 (1.6.x from bookworm if 2.1.9 is not installed)
# with CRI and a CNI bridge, in its own mount + network + IPC namespaces,
# runs a pod with two containers on our shim (handler `oxrun`), driven by a
# tiny CRI client (integration/examples/cri-tool.rs, the CRI suite's
# harness): one shim per pod, the containers' cgroups, the pod IP, the
# logs, and after removal nothing left. Cleans up after itself.
#
#   scripts/demo.sh
#
# Env: OXRUN=/path/to/runtime demos that binary instead (and skips the build),
# e.g. OXRUN=/usr/sbin/runc to compare; the CRI part then runs only if a
# containerd-shim-rust-v2 sits next to it. OXRUN_DEMO_CRI=0 skips the CRI
# part.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }
fail() {
    printf 'DEMO FAILED: %s\n' "$*" >&2
    exit 1
}

bash scripts/setup.sh
# shellcheck disable=SC1091
[[ -f "${HOME:-/root}/.cargo/env" ]] && . "${HOME:-/root}/.cargo/env"

if [[ -z "${OXRUN:-}" ]]; then
    step "cargo build --release"
    cargo build --release
    OXRUN="${CARGO_TARGET_DIR:-$PWD/target}/release/oxrun"
fi
export OXRUN
[[ -x "$OXRUN" ]] || fail "no runtime binary at $OXRUN"

tmp="$(mktemp -d /tmp/oxrun-demo.XXXXXX)"
state="$tmp/state"
id1="demo-$$"
id2="demo2-$$"
rt() { "$OXRUN" --root "$state" "$@"; }
cleanup() {
    local rc=$?
    for id in "$id1" "$id2"; do
        rt delete -f "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT

step "make busybox bundle"
bash scripts/mkbundle.sh "$tmp/bundle"
hostname="$(jq -r '.hostname // empty' "$tmp/bundle/config.json")"

step "$(basename "$OXRUN") --root $state run --bundle $tmp/bundle $id1"
out="$(rt run --bundle "$tmp/bundle" "$id1" </dev/null)" ||
    fail "run exited with status $?"
printf '%s\n' "$out"
grep -qx 'hello from oxrun' <<<"$out" || fail "no greeting in output"
grep -qE '^Pid:[[:space:]]+[0-9]+$' <<<"$out" || fail "no Pid line"
grep -qE '^NoNewPrivs:[[:space:]]+1$' <<<"$out" || fail "NoNewPrivs is not 1"
if [[ -n "$hostname" ]]; then
    [[ "$(tail -n1 <<<"$out")" == "$hostname" ]] || fail "hostname is not '$hostname'"
fi

step "lifecycle of a second container (sleep 30)"
bash scripts/mkbundle.sh "$tmp/bundle2" sleep 30 2>/dev/null
status() { rt state "$id2" 2>/dev/null | jq -r .status || true; }
expect_status() {
    local want=$1 got
    for _ in $(seq 50); do
        got="$(status)"
        [[ "$got" == "$want" ]] && return
        sleep 0.1
    done
    fail "state of $id2 is '$got', expected '$want'"
}

echo "\$ create --bundle ... $id2"
rt create --bundle "$tmp/bundle2" "$id2" </dev/null >/dev/null
expect_status created
rt state "$id2" | jq .
echo "\$ start $id2"
rt start "$id2"
expect_status running
rt state "$id2" | jq .
pid="$(rt state "$id2" | jq -r .pid)"
echo "container init pid on the host: $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline"))"
echo "\$ kill $id2 KILL"
rt kill "$id2" KILL
expect_status stopped
rt state "$id2" | jq .
echo "\$ delete $id2"
rt delete "$id2"
if rt state "$id2" >/dev/null 2>&1; then
    fail "$id2 still has state after delete"
fi
echo "$id2 is gone"

if [[ "${OXRUN_DEMO_CRI:-1}" == 0 ]]; then
    step "demo OK (CRI part skipped: OXRUN_DEMO_CRI=0)"
    exit 0
fi
shim="$(dirname "$OXRUN")/containerd-shim-rust-v2"
if [[ ! -x "$shim" ]]; then
    step "demo OK (CRI part skipped: no $shim)"
    exit 0
fi

step "CRI: containerd + containerd-shim-rust-v2, a pod with two containers"
# Both idempotent; the matrix needs the network only for a missing release.
bash scripts/containerd-matrix.sh ||
    echo "containerd-matrix.sh failed; trying containerd 1.6 from /usr/bin" >&2
bash scripts/mkimages.sh
ctd=2.1
if [[ ! -x "${OXRUN_TEST_OPT:-/opt/oxrun-test}/containerd-2.1.9/usr/bin/containerd" ]]; then
    ctd=1.6
    command -v containerd >/dev/null || fail "no containerd 2.1.9 nor 1.6 (scripts/setup.sh)"
fi
# The client is test code (panic = unwind, so its clean-up always runs): the
# dev profile, not the release one (panic = abort).
echo "\$ cargo build -p integration --example cri-tool"
cargo build -q -p integration --example cri-tool
tool="${CARGO_TARGET_DIR:-$PWD/target}/debug/examples/cri-tool"
# Every CRI call and wait inside has its own deadline (60 s / 30 s); this
# is the last resort.
OXRUN_BIN="$OXRUN" OXRUN_SHIM_BIN="$shim" timeout -k 10 600 "$tool" demo "$ctd" ||
    fail "CRI demo exited with status $?"

step "demo OK"
