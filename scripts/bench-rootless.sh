#!/usr/bin/env bash
# Rootless benchmark: oxrun vs runc vs crun run by the unprivileged user
# oxrun-rl (made by scripts/setup.sh), in one run, with hyperfine. Run as
# root (it drops to the user for the measurements).
#
#   scripts/bench-rootless.sh [--runs N] [--warmup N] [--runtimes "oxrun runc crun"]
#
# Measures `run` in the foreground of a busybox bundle running /bin/true with
# the config `oxrun spec --rootless` writes (a user namespace mapping the
# user to root, no network namespace, no resources; ociVersion 1.0.2, which
# all three accept), state under the user's own --root. No cgroup is
# delegated, so each runtime runs without one. Prints a markdown table of
# medians and ratios to oxrun; raw hyperfine JSON goes to target/bench.
#
# Everything runs in a private mount namespace with /sys/fs/cgroup/unified
# unmounted (crun 1.8 refuses cgroup v1/v2 hybrid hosts, as in bench.sh).
# Env: OXRUN=path of the oxrun binary (default target/release/oxrun).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=100
warmup=10
runtimes="oxrun runc crun"
user=oxrun-rl
die() {
    echo "bench-rootless: $*" >&2
    exit 1
}

((EUID == 0)) || die "must run as root"
id "$user" >/dev/null 2>&1 || die "no user $user (scripts/setup.sh makes it)"
if [[ -z "${OXRUN_BENCH_IN_NS:-}" ]]; then
    OXRUN_BENCH_IN_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
while (($#)); do
    case $1 in
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --runtimes) runtimes=$2; shift 2 ;;
    *) die "unknown argument: $1" ;;
    esac
done
command -v hyperfine >/dev/null || die "hyperfine is missing (scripts/setup.sh)"
oxrun="${OXRUN:-$repo/target/release/oxrun}"
[[ -x $oxrun ]] || die "no oxrun binary at $oxrun (cargo build --release)"
if mountpoint -q /sys/fs/cgroup/unified; then
    umount /sys/fs/cgroup/unified
fi

work="$(mktemp -d /tmp/oxrun-bench-rl.XXXXXX)"
trap 'umount -l "$work" 2>/dev/null; rm -rf "$work"' EXIT
mount -t tmpfs -o mode=0755 tmpfs "$work"
uid="$(id -u "$user")"
gid="$(id -g "$user")"
mkdir -p "$work/b/rootfs/bin" "$work/b/rootfs/proc" "$work/b/rootfs/dev" \
    "$work/b/rootfs/sys" "$work/xdg" "$work/out"
cp /bin/busybox "$work/b/rootfs/bin/"
ln -s busybox "$work/b/rootfs/bin/true"
cp "$oxrun" "$work/oxrun"
# The maps are set to the user's below (spec --rootless maps its caller).
(cd "$work/b" && "$work/oxrun" spec --rootless)
python3 - "$work/b/config.json" "$uid" "$gid" <<'EOF'
import json, sys
path, uid, gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = json.load(open(path))
c["ociVersion"] = "1.0.2"
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
json.dump(c, open(path, "w"), indent=1)
EOF
chown -R "$uid:$gid" "$work"
chmod 700 "$work/xdg"

cmds=()
names=()
for rt in $runtimes; do
    bin="$rt"
    [[ $rt == oxrun ]] && bin="$work/oxrun"
    command -v "$bin" >/dev/null || die "$rt is not installed"
    names+=("$rt")
    cmds+=(-n "$rt" "$bin --root $work/xdg/$rt run -b $work/b bench-$rt")
done
as_user=(setpriv --reuid "$uid" --regid "$gid" --clear-groups
    env "XDG_RUNTIME_DIR=$work/xdg" "HOME=$work")
"${as_user[@]}" hyperfine -N --runs "$runs" --warmup "$warmup" \
    --export-json "$work/out/run.json" "${cmds[@]}" >&2
mkdir -p "$repo/target/bench"
cp "$work/out/run.json" "$repo/target/bench/rootless-run.json"
python3 - "$work/out/run.json" <<'EOF'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
base = next(r["median"] for r in res if r["command"] == "oxrun")
print("| rootless `run` (true) | median | ratio to oxrun |")
print("|---|---|---|")
for r in res:
    print(f"| {r['command']} | {r['median'] * 1000:.2f} ms | {r['median'] / base:.2f}x |")
EOF
