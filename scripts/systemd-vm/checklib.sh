# checklib.sh - the check helpers the guest scripts share (check.sh,
# rootless-check.sh): sourced, not run. Counts into $pass and $fail; the
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
