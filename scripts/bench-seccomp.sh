#!/usr/bin/env bash
# Seccomp benchmark: oxrun vs runc with the same profile, in one run. Not a
# test. Run as root.
#
#   scripts/bench-seccomp.sh [--calls N] [--reps R] [--runtimes "oxrun runc"]
#
# Profile: seccomp-profiles/default.json resolved for runc's default
# capabilities (`oxrun spec --seccomp default`), loaded by each runtime into
# a busybox container. Measures:
#   BPF instructions   size of the loaded filter, read back from the
#                      container's process with PTRACE_SECCOMP_GET_FILTER
#                      (a small C helper, so oxrun's and libseccomp's
#                      programs are measured the same way)
#   path length        instructions the filter runs for a syscall (the
#                      helper interprets the dumped program), for getpid and
#                      for the cheap allowed syscall farthest down runc's
#                      program ("late"), and the worst over all allowed
#                      x86_64 syscalls
#   ns/call            a static C loop doing N raw syscalls inside the
#                      container (median of R runs), for getpid, "late" and
#                      personality(0), and the same loops without seccomp.
#                      Since Linux 5.11 the kernel caches "always allowed"
#                      per syscall number and skips the filter for them, so
#                      getpid and "late" mostly show that cache; personality
#                      is allowed only for some arguments, so the filter
#                      runs on every call and its path length shows.
# Env: OXRUN=path of the oxrun binary (default target/release/oxrun),
# RUNC=path of runc (default: runc in PATH).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OXRUN="${OXRUN:-$repo/target/release/oxrun}"
RUNC="${RUNC:-$(command -v runc || true)}"
calls=10000000
reps=5
runtimes="oxrun runc"

die() {
    echo "bench-seccomp: $*" >&2
    exit 1
}
log() { echo "[bench-seccomp] $*" >&2; }

while (($#)); do
    case $1 in
    --calls) calls=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --runtimes) runtimes=$2; shift 2 ;;
    -h | --help)
        sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument: $1 (try --help)" ;;
    esac
done
((EUID == 0)) || die "must run as root"
[[ -x "$OXRUN" ]] || die "no oxrun at $OXRUN (cargo build --release)"
command -v gcc >/dev/null || die "gcc is needed (static C helpers)"
read -ra rts <<<"$runtimes"
bin_of() {
    case $1 in
    oxrun) echo "$OXRUN" ;;
    runc) [[ -n "$RUNC" ]] || die "runc not found"; echo "$RUNC" ;;
    *) die "unknown runtime $1" ;;
    esac
}

work="$(mktemp -d /tmp/oxrun-bench-seccomp.XXXXXX)"
ids=()
cleanup() {
    for entry in "${ids[@]}"; do
        "$(bin_of "${entry%%:*}")" --root "$work/root-${entry%%:*}" delete -f "${entry#*:}" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# --- helpers -----------------------------------------------------------------
log "building the C helpers"
gcc -static -pthread -O2 -o "$work/probe" "$repo/integration/tests/seccomp_support/probe.c"
cat >"$work/dump.c" <<'EOF'
/* dump PID NR...: size of PID's newest seccomp filter (via
 * PTRACE_SECCOMP_GET_FILTER) and, for each syscall NR (x86_64, zero args),
 * the instructions it runs and the action it returns. */
#include <errno.h>
#include <linux/filter.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif

static int run(const struct sock_filter *p, long n, uint32_t nr, uint32_t *action) {
    uint32_t data[16] = {0}, a = 0, x = 0, mem[16] = {0};
    data[0] = nr;
    data[1] = 0xc000003e; /* AUDIT_ARCH_X86_64 */
    int steps = 0;
    for (long pc = 0; pc < n;) {
        struct sock_filter i = p[pc++];
        steps++;
        switch (i.code) {
        case BPF_LD | BPF_W | BPF_ABS: a = data[i.k / 4]; break;
        case BPF_LD | BPF_MEM: a = mem[i.k & 15]; break;
        case BPF_LDX | BPF_MEM: x = mem[i.k & 15]; break;
        case BPF_ST: mem[i.k & 15] = a; break;
        case BPF_STX: mem[i.k & 15] = x; break;
        case BPF_ALU | BPF_AND | BPF_K: a &= i.k; break;
        case BPF_ALU | BPF_OR | BPF_K: a |= i.k; break;
        case BPF_MISC | BPF_TAX: x = a; break;
        case BPF_MISC | BPF_TXA: a = x; break;
        case BPF_JMP | BPF_JA: pc += i.k; break;
        case BPF_JMP | BPF_JEQ | BPF_K: pc += a == i.k ? i.jt : i.jf; break;
        case BPF_JMP | BPF_JGT | BPF_K: pc += a > i.k ? i.jt : i.jf; break;
        case BPF_JMP | BPF_JGE | BPF_K: pc += a >= i.k ? i.jt : i.jf; break;
        case BPF_JMP | BPF_JSET | BPF_K: pc += (a & i.k) ? i.jt : i.jf; break;
        case BPF_RET | BPF_K: *action = i.k; return steps;
        case BPF_RET | BPF_A: *action = a; return steps;
        default: fprintf(stderr, "dump: opcode %#x not interpreted\n", i.code); return -1;
        }
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int pid = atoi(argv[1]), st;
    if (ptrace(PTRACE_ATTACH, pid, 0, 0)) { perror("PTRACE_ATTACH"); return 1; }
    waitpid(pid, &st, __WALL);
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, NULL);
    struct sock_filter *f = n > 0 ? calloc(n, sizeof *f) : NULL;
    if (n <= 0 || !f || ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, f) != n) {
        perror("PTRACE_SECCOMP_GET_FILTER");
        ptrace(PTRACE_DETACH, pid, 0, 0);
        return 1;
    }
    int filters = 1;
    while (ptrace(PTRACE_SECCOMP_GET_FILTER, pid, filters, NULL) > 0) filters++;
    ptrace(PTRACE_DETACH, pid, 0, 0);
    printf("insns=%ld filters=%d\n", n, filters);
    for (int i = 2; i < argc; i++) {
        uint32_t act = 0;
        int steps = run(f, n, (uint32_t)atoi(argv[i]), &act);
        printf("path %s %d %#x\n", argv[i], steps, act);
    }
    return 0;
}
EOF
gcc -O2 -o "$work/dump" "$work/dump.c"

# --- bundle --------------------------------------------------------------------
log "making the bundle"
bundle="$work/bundle"
OXRUN="$OXRUN" bash "$repo/scripts/mkbundle.sh" "$bundle" true 2>/dev/null
install -m 0755 "$work/probe" "$bundle/rootfs/bin/probe"
mkdir -p "$work/specgen"
if "$OXRUN" spec --bundle "$work/specgen" --seccomp default 2>/dev/null; then
    profile_from="oxrun spec --seccomp default"
else
    # An oxrun without the flag: resolve the template as its README says.
    python3 - "$repo/seccomp-profiles/default.json" "$work/specgen/config.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
t.pop("about", None)
out = []
for e in t["syscalls"]:
    if "ifAnyCap" in e and not caps & set(e["ifAnyCap"]):
        continue
    if "unlessCaps" in e and caps & set(e["unlessCaps"]):
        continue
    for k in ("ifAnyCap", "unlessCaps", "comment"):
        e.pop(k, None)
    out.append(e)
t["syscalls"] = out
json.dump({"linux": {"seccomp": t}}, open(sys.argv[2], "w"))
EOF
    profile_from="seccomp-profiles/default.json resolved by this script"
fi
# set_config ARGS... (none = no seccomp): process.args and the profile.
set_config() {
    local seccomp=1
    if [[ "$1" == --no-seccomp ]]; then seccomp=0; shift; fi
    python3 - "$bundle/config.json" "$work/specgen/config.json" "$seccomp" "$@" <<'EOF'
import json, sys
path, gen, seccomp, args = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
cfg = json.load(open(path))
cfg["process"]["args"] = args
cfg["process"]["terminal"] = False
cfg["root"]["readonly"] = True
if seccomp:
    cfg["linux"]["seccomp"] = json.load(open(gen))["linux"]["seccomp"]
else:
    cfg["linux"].pop("seccomp", None)
json.dump(cfg, open(path, "w"), indent=1)
EOF
}

# --- instruction counts ----------------------------------------------------------
# name:nr:args of cheap syscalls the default profile allows (x86_64)
candidates="getpid:39: getppid:110: getuid:102: gettid:186: getpgrp:111: sched_yield:24: getcpu:309:0,0,0 getrandom:318:0,0,0 membarrier:324:0,0,0 close_range:436:1000,1000,0"
# (read through a nameref in row())
# shellcheck disable=SC2034
declare -A insns worst_path path_of
allowed_nrs=$(seq 0 470 | tr '\n' ' ')
set_config /bin/sleep 1000
for rt in "${rts[@]}"; do
    bin="$(bin_of "$rt")"
    root="$work/root-$rt"
    id="bsc-$rt-$$"
    ids+=("$rt:$id")
    "$bin" --root "$root" create --bundle "$bundle" "$id" </dev/null >/dev/null 2>"$work/create-$rt.err" ||
        die "$rt create failed: $(cat "$work/create-$rt.err")"
    "$bin" --root "$root" start "$id"
    pid=$("$bin" --root "$root" state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
    sleep 0.2
    # shellcheck disable=SC2086
    "$work/dump" "$pid" $allowed_nrs >"$work/dump-$rt.txt"
    "$bin" --root "$root" delete -f "$id" >/dev/null 2>&1 || true
    # shellcheck disable=SC2034
    insns[$rt]=$(sed -n 's/^insns=\([0-9]*\).*/\1/p' "$work/dump-$rt.txt")
    # worst path over the syscalls the filter allows
    # shellcheck disable=SC2034
    worst_path[$rt]=$(awk '$1=="path" && $4=="0x7fff0000" { if ($3>m) m=$3 } END { print m+0 }' "$work/dump-$rt.txt")
    for c in $candidates; do
        IFS=: read -r name nr _ <<<"$c"
        path_of[$rt:$name]=$(awk -v n="$nr" '$1=="path" && $2==n { print $3 }' "$work/dump-$rt.txt")
    done
    path_of[$rt:personality]=$(awk '$1=="path" && $2==135 { print $3 }' "$work/dump-$rt.txt")
done
# "late": the candidate farthest down runc's program (or oxrun's, without runc)
ref=runc
[[ " ${rts[*]} " == *" runc "* ]] || ref=${rts[0]}
late="" late_args="" best=-1
for c in $candidates; do
    IFS=: read -r name _ args <<<"$c"
    [[ $name == getpid ]] && continue
    p=${path_of[$ref:$name]:-0}
    if ((p > best)); then best=$p late=$name late_args=${args//,/ }; fi
done
log "late syscall: $late (${best} instructions in $ref's filter)"

# --- per-call cost ---------------------------------------------------------------
# once RT NAME [--no-seccomp] -> ns/call of one run
once() {
    local rt=$1 name=$2 mode=${3:-} args=() out bin
    [[ $name == "$late" ]] && read -ra args <<<"$late_args"
    [[ $name == personality ]] && args=(0)
    if [[ $mode == --no-seccomp ]]; then
        set_config --no-seccomp /bin/probe loop "$name" "$calls" "${args[@]}"
    else
        set_config /bin/probe loop "$name" "$calls" "${args[@]}"
    fi
    bin="$(bin_of "$rt")"
    out=$("$bin" --root "$work/root-$rt" run --bundle "$bundle" "bsl-$rt-$$" </dev/null 2>/dev/null) ||
        die "$rt run failed"
    sed -n 's/^ns_per_call=//p' <<<"$out"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR]=$1 } END { print v[int((NR+1)/2)] }'; }
# Runtimes interleaved within each round, so load drifting on the host
# affects them alike.
declare -A ns samples
for ((r = 1; r <= reps; r++)); do
    log "round $r/$reps: getpid, $late, personality x $calls for ${rts[*]} and without seccomp"
    for name in getpid "$late" personality; do
        for rt in "${rts[@]}"; do
            samples[$rt:$name]+=" $(once "$rt" "$name")"
        done
        samples[none:$name]+=" $(once "${rts[0]}" "$name" --no-seccomp)"
    done
done
for key in "${!samples[@]}"; do
    # shellcheck disable=SC2086
    ns[$key]=$(median ${samples[$key]})
done

# --- table -------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo
echo "Profile: $profile_from (runc's default capabilities), $(nproc) CPUs, kernel $(uname -r)"
echo "$calls calls per run, median of $reps runs; runtimes: ${rts[*]}"
echo
hdr="| measure |"
sep="|---|"
for rt in "${rts[@]}"; do hdr+=" $rt |"; sep+="---:|"; done
if ((${#rts[@]} == 2)); then hdr+=" ${rts[0]}/${rts[1]} |"; sep+="---:|"; fi
echo "$hdr"
echo "$sep"
row() { # row LABEL KEY-PREFIX (values from the named array)
    local label=$1 arr=$2 key=$3 v=()
    local line="| $label |"
    for rt in "${rts[@]}"; do
        local -n a=$arr
        local val=${a[$rt$key]:-}
        v+=("$val")
        line+=" $val |"
    done
    if ((${#rts[@]} == 2)); then line+=" $(ratio "${v[0]}" "${v[1]}") |"; fi
    echo "$line"
}
row "BPF instructions loaded" insns ""
row "instructions run: getpid" path_of ":getpid"
row "instructions run: $late" path_of ":$late"
row "instructions run: personality(0) (argument check)" path_of ":personality"
row "instructions run: worst allowed x86_64 syscall" worst_path ""
row "ns/call getpid" ns ":getpid"
row "ns/call $late" ns ":$late"
row "ns/call personality(0)" ns ":personality"
echo "| ns/call without seccomp: getpid / $late / personality | ${ns[none:getpid]} / ${ns[none:$late]} / ${ns[none:personality]} | | |"
