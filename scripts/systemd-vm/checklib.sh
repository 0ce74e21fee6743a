# checklib.sh - the check helpers the guest scripts share (check.sh,
# check-v1.sh, rootless-check.sh): sourced, not run. Counts into $pass and $fail; the
# script prints "N passed, N failed" at its end.
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $*"; }
nok() { fail=$((fail + 1)); echo "FAIL $*"; }
# check NAME EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then ok "$1 = $3"; else nok "$1: expected '$2', got '$3'"; fi; }
# contains NAME NEEDLE TEXT
contains() {
    case "$3" in
    *"$2"*) ok "$1" ;;
    *) nok "$1: '$2' not in: $3" ;;
    esac
}

# The runtime checks' helpers (check.sh, check-v1.sh): they use $RT, $ROOT
# and $NAME, which the script sets first.
# every runtime call is bounded (a hang fails its check, not the whole run)
rt() { timeout -k 5 60 "$RT" --root "$ROOT" --systemd-cgroup "$@"; }
# ref NAME OURS REFERENCE ACTUAL: where the reference runtime (runc 1.1.5)
# is known to differ from what oxrun must do, each is held to its own value
ref() {
    if [ "$NAME" = oxrun ]; then
        check "$1" "$2" "$4"
    else
        check "$1 (reference $NAME; oxrun: $2)" "$3" "$4"
    fi
}
# one-line contents of a file
one() { tr '\n' ' ' < "$1" 2>&1 | sed 's/ *$//'; }
# show UNIT PROPERTY: systemctl show's value
show() { systemctl show -p "$2" --value -- "$1" 2>&1; }
# wait_for FILE NEEDLE: up to 20 s
wait_for() {
    local i=0
    while [ $i -lt 200 ]; do
        grep -q "$2" "$1" 2> /dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
status() { rt state "$1" 2> /dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'; }

# bundle ID CGROUPS_PATH SCRIPT RESOURCES: $WORK/ID/config.json (SCRIPT
# without double quotes or backslashes), with a cgroup mount; a cgroup
# namespace too when $CGROUPNS is set.
bundle() {
    mkdir -p "$WORK/$1"
    cat > "$WORK/$1/config.json" << EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false, "user": {"uid": 0, "gid": 0},
    "args": ["sh", "-c", "$3"],
    "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": true
  },
  "root": {"path": "$WORK/rootfs", "readonly": true},
  "hostname": "sd",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro", "nosuid", "nodev", "noexec"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "nodev", "noexec"]}
  ],
  "linux": {
    ${2:+\"cgroupsPath\": \"$2\",}
    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}${CGROUPNS:+, {\"type\": \"cgroup\"\}}],
    "resources": $4
  }
}
EOF
}
# run ID: detached, output in $WORK/ID/out
run() { rt run -d --bundle "$WORK/$1" "$1" > "$WORK/$1/out" 2>&1 < /dev/null; }
