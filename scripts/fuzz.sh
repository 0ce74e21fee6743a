#!/usr/bin/env bash
# Fuzz config.json loading/validation, the seccomp compiler and the D-Bus
# message parser for a fixed budget per target (not run in CI). Usage:
#   scripts/fuzz.sh [SECONDS_PER_TARGET]      (default 60)
# Needs cargo-fuzz (installed here if missing) and a nightly toolchain for
# libFuzzer with AddressSanitizer. Without nightly it falls back to
# `cargo fuzz run -s none` on stable (libFuzzer coverage, no sanitizer).
# Seeds in fuzz/seeds/<target> are read, never written: each run works on
# a scratch copy. Exit status: 0 when no target found a crash or a hang.
set -euo pipefail
cd "$(dirname "$0")/.."
budget="${1:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    run=(cargo +nightly fuzz run)
    mode="nightly, AddressSanitizer"
else
    echo "== no nightly toolchain: stable, no sanitizer (-s none)"
    run=(cargo fuzz run -s none)
    mode="stable, no sanitizer"
fi

scratch="$(mktemp -d /tmp/oxrun-fuzz.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
status=0
for target in config seccomp dbus; do
    corpus="$scratch/$target"
    mkdir -p "$corpus"
    cp fuzz/seeds/"$target"/* "$corpus"/
    echo "== $target: ${budget}s ($mode)"
    log="$scratch/$target.log"
    set +e
    (cd fuzz && "${run[@]}" "$target" "$corpus" -- \
        -max_total_time="$budget" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1) \
        >"$log" 2>&1
    rc=$?
    set -e
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$log" || true
    if [ $rc -ne 0 ]; then
        echo "!! $target: fuzzer exited $rc (crash, hang or build failure); last lines:"
        tail -n 30 "$log"
        ls fuzz/artifacts/"$target" 2>/dev/null || true
        status=1
    else
        echo "ok $target: no crash, no hang; corpus $(ls "$corpus" | wc -l) inputs"
    fi
done
exit $status
