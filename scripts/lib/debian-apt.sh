# shellcheck shell=bash
# Shared by scripts that fetch packages from newer Debian suites (trixie,
# sid) without touching the system's apt configuration. Source it, then:
#
#   debian_apt_init DIR "trixie sid"   # private config under DIR, sets APT_OPTS
#   apt-get "${APT_OPTS[@]}" update -qq
#   apt-get "${APT_OPTS[@]}" download pkg=version
#
# DIR holds its own sources file, package lists, cache and an empty dpkg
# status, so `apt-get -s install` there resolves a package's whole dependency
# closure as if on an empty system. The mirror is read from this machine's
# own apt sources (first non-security http(s)/file URI), the archive is
# verified with debian-archive-keyring.

# The mirror: the first http(s) URI of a Debian (non-security) source.
debian_apt_mirror() {
    local f u
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        u=$(awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' "$f" | grep -v -- '-security' | head -1 || true)
        [[ -n $u ]] && { echo "$u"; return; }
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        u=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; break } }' "$f" |
            grep -v -- '-security' | head -1 || true)
        [[ -n $u ]] && { echo "$u"; return; }
    done
    echo http://deb.debian.org/debian
}

# debian_apt_init DIR SUITES: writes DIR/oxrun.sources for SUITES (space
# separated) and sets the global array APT_OPTS pointing apt at DIR only.
debian_apt_init() {
    local dir=$1 suites=$2 keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    if [[ ! -f $keyring ]]; then
        printf 'no %s (package debian-archive-keyring)\n' "$keyring" >&2
        return 1
    fi
    DEBIAN_APT_MIRROR=$(debian_apt_mirror)
    mkdir -p "$dir"/{lists/partial,cache/archives/partial,debs,preferences.d}
    cat >"$dir/oxrun.sources" <<SRC
Types: deb
URIs: $DEBIAN_APT_MIRROR
Suites: $suites
Components: main
Signed-By: $keyring
SRC
    touch "$dir/status"
    APT_OPTS=(
        -o "Dir::Etc::sourcelist=$dir/oxrun.sources"
        -o "Dir::Etc::sourceparts=-"
        -o "Dir::State::lists=$dir/lists"
        -o "Dir::State::status=$dir/status"
        -o "Dir::Cache=$dir/cache"
        -o "Dir::Etc::preferences=$dir/preferences"
        -o "Dir::Etc::preferencesparts=$dir/preferences.d"
        -o "APT::Default-Release="
        -o "APT::Sandbox::User=root"
        -o "Debug::NoLocking=1"
    )
}

# debian_apt_version PKG SUITE PREFIX: the exact Debian version of PKG in
# SUITE that starts with PREFIX (4.2.1 matches 4.2.1-1), or nothing.
debian_apt_version() {
    apt-cache "${APT_OPTS[@]}" madison "$1" |
        awk -v s="$2" -v v="$3" '$0 ~ "/" s "[ /]" || $0 ~ " " s "/" { if (index($3, v) == 1) { print $3; exit } }'
}

# debian_apt_closure SUITE PKG=VERSION...: every package (name=version) that
# installing the given ones on an empty system would bring, preferring SUITE.
debian_apt_closure() {
    local suite=$1
    shift
    apt-get "${APT_OPTS[@]}" -o "APT::Default-Release=$suite" -s install --no-install-recommends "$@" |
        awk '/^Inst / { v = $3; gsub(/[()]/, "", v); print $2 "=" v }'
}
