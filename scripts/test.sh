#!/usr/bin/env bash
# Run every check and test: fmt, clippy, release build, unit tests, and the
# root integration tests (which spawn real containers with
# target/release/oxrun). Runs every step even if an earlier one fails (except
# the integration tests, which need the build), then prints a summary and
# exits non-zero if anything failed.
#
#   scripts/test.sh        (any cwd; run as root)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
# shellcheck disable=SC1091
[[ -f "${HOME:-/root}/.cargo/env" ]] && . "${HOME:-/root}/.cargo/env"

export OXRUN_BIN="$PWD/target/release/oxrun"
export OXRUN="$OXRUN_BIN" # for scripts/mkbundle.sh
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

summary=()
failed=0
step() { # step NAME CMD...: run CMD, record the outcome
    local name=$1 t0=$SECONDS
    shift
    printf '\n==> %s: %s\n' "$name" "$*"
    if "$@"; then
        summary+=("ok      $name ($((SECONDS - t0))s)")
    else
        summary+=("FAILED  $name (exit $?, $((SECONDS - t0))s)")
        failed=1
        return 1
    fi
}

step fmt cargo fmt --all -- --check || true
step clippy cargo clippy --workspace --all-targets -- -D warnings || true
if step build cargo build --release; then built=1; else built=0; fi
step unit-tests cargo test --workspace --exclude integration || true
if ((built)); then
    # (cri_v*: the CRI suite, its own step below)
    step integration-tests cargo test -p integration -- --skip cri_v || true
    # Kubernetes pods through containerd's CRI (1.6, 1.7, 2.1 x oxrun,
    # runc); images from scripts/mkimages.sh, containerd releases from
    # scripts/containerd-matrix.sh (run by setup.sh).
    step cri-images bash scripts/mkimages.sh || true
    step cri-tests cargo test -p integration --test cri -- cri_v || true
    step cgroup2-vm bash scripts/test-cgroup2.sh || true
    # systemd as PID 1 on pure cgroup v2 (qemu guest): --systemd-cgroup and
    # containerd 2.1.9 with SystemdCgroup = true (scripts/systemd-vm/).
    step systemd-vm bash scripts/test-systemd.sh || true
else
    summary+=("SKIPPED integration-tests (release build failed)")
    failed=1
fi

printf '\n==> summary\n'
printf '  %s\n' "${summary[@]}"
if ((failed)); then
    echo "TESTS FAILED"
    exit 1
fi
echo "ALL CHECKS OK"
