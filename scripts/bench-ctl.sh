#!/usr/bin/env bash
# Multi-step container drivers timed (or used as --prepare) by bench.sh.
#
#   scripts/bench-ctl.sh RUNTIME STATE-ROOT BUNDLE ID VERB
#
# VERB: lifecycle  create, start, poll `state` until stopped, delete
#       reset      remove ID if it exists, letting a created container run to
#                  its natural exit first (as in a real lifecycle) rather than
#                  SIGKILLing it, then delete -f as a fallback
#       created    reset, then create        (prepare for timing `start`)
#       stopped    created, start, wait      (prepare for timing `delete`)
set -euo pipefail
R=$1 S=$2 B=$3 id=$4

rt() { "$R" --root "$S" "$@"; }
status() { # prints created/running/stopped, or nothing if ID doesn't exist
    local s
    s=$(rt state "$id" 2>/dev/null) || return 0
    [[ $s =~ \"status\":[[:space:]]*\"([a-z]+)\" ]] && echo "${BASH_REMATCH[1]}"
}
wait_stopped() {
    local i s
    for ((i = 0; i < 5000; i++)); do
        s=$(status)
        [[ $s == stopped ]] && return 0
    done
    echo "bench-ctl: $id never stopped (status: $s)" >&2
    return 1
}

case $5 in
lifecycle)
    rt create -b "$B" "$id" </dev/null
    rt start "$id"
    wait_stopped
    rt delete "$id"
    ;;
reset)
    s=$(status)
    [[ -z $s ]] && exit 0
    if [[ $s == created ]]; then
        rt start "$id" >/dev/null 2>&1 || true
    fi
    wait_stopped 2>/dev/null || true
    rt delete -f "$id" >/dev/null 2>&1 || true
    ;;
created)
    "$0" "$R" "$S" "$B" "$id" reset
    rt create -b "$B" "$id" </dev/null
    ;;
stopped)
    "$0" "$R" "$S" "$B" "$id" created
    rt start "$id"
    wait_stopped
    ;;
*)
    echo "bench-ctl: unknown verb $5" >&2
    exit 2
    ;;
esac
