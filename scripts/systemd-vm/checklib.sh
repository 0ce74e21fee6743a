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
