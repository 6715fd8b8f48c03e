#!/usr/bin/env bash
# Fetch the test certificate authorities into the repository's own cache folder:
#
#   .cache/tools/pebble-2.10/  Pebble 2.10.x from Debian unstable (ARI, profiles, Retry-After)
#   .cache/tools/pebble-2.4/   Pebble 2.4 from Debian 12 (no ARI, no profiles)
#
# Both packages also carry pebble-challtestsrv. Nothing is installed system-wide and the
# system's apt configuration is left as it was: the unstable package is fetched through a
# private sources list and private list/archive folders kept inside the cache.
#
# Run as root on Debian 12. A second run finds the binaries and does no network work.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/../.." && pwd)
cache="$repo_root/.cache/tools"
system_sources=/etc/apt/sources.list.d/debian.sources
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

step() {
    printf '==> %s\n' "$*"
}

fail() {
    printf 'install-tools: %s\n' "$*" >&2
    exit 1
}

have_binaries() {
    [[ -x "$1/usr/bin/pebble" && -x "$1/usr/bin/pebble-challtestsrv" ]]
}

# The mirror host the system already uses, so the unstable archive comes from the same place.
# Debian 12 images carry deb822 sources; older installs may still have a one-line sources.list.
system_mirror() {
    local uri=""

    if [[ -r "$system_sources" ]]; then
        uri=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' "$system_sources")
    fi
    if [[ -z "$uri" && -r /etc/apt/sources.list ]]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ {
                for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
            /etc/apt/sources.list)
    fi
    [[ -n "$uri" ]] || fail "no Debian mirror found in $system_sources or /etc/apt/sources.list"
    printf '%s\n' "${uri%/}"
}

# Unpack a downloaded .deb beside its final place and move it in only when complete, so an
# interrupted run never leaves a folder that looks installed.
unpack() {
    local deb=$1 target=$2 staging="$2.partial"

    rm -rf -- "$staging"
    dpkg -x "$deb" "$staging"
    dpkg-deb -f "$deb" Version >"$staging/package-version"
    rm -rf -- "$target"
    mv -- "$staging" "$target"
}

require_version() {
    local found=$1 wanted=$2 origin=$3

    [[ "$found" == "$wanted".* ]] ||
        fail "$origin offers pebble $found, not $wanted.x; update tests/tools/install-tools.sh"
}

install_unstable_pebble() {
    local target="$cache/pebble-2.10" apt_root="$cache/apt-unstable" version

    if have_binaries "$target"; then
        step "pebble 2.10: reusing $target"
        return
    fi

    mkdir -p "$apt_root/lists/partial" "$apt_root/archives/partial"
    write_unstable_sources "$apt_root/unstable.sources"

    # Every path apt would write to points inside the cache; the package caches are turned
    # off so the system's pkgcache.bin is never rebuilt from the unstable lists. The
    # download runs as root because _apt cannot write into a folder of the repository;
    # the files are still checked against the signed Release file.
    local -a apt_options=(
        -oDir::Etc::SourceList="$apt_root/unstable.sources"
        -oDir::Etc::SourceParts=/dev/null
        -oDir::Etc::Preferences=/dev/null
        -oDir::Etc::PreferencesParts=/dev/null
        -oDir::State::Lists="$apt_root/lists"
        -oDir::Cache::archives="$apt_root/archives"
        -oDir::Cache::pkgcache=
        -oDir::Cache::srcpkgcache=
        -oAPT::Sandbox::User=root
    )

    step "pebble 2.10: reading the Debian unstable package list"
    apt-get -q "${apt_options[@]}" update >/dev/null

    version=$(apt-cache "${apt_options[@]}" show --no-all-versions pebble |
        awk '/^Version:/ { print $2; exit }')
    require_version "$version" 2.10 "Debian unstable"

    step "pebble 2.10: downloading pebble $version"
    rm -f -- "$apt_root"/archives/pebble_*.deb
    (cd "$apt_root/archives" && apt-get -q "${apt_options[@]}" download "pebble=$version" >/dev/null)

    step "pebble 2.10: unpacking into $target"
    unpack "$apt_root/archives/pebble_"*.deb "$target"
}

# Unstable's Release file is signed by the archive's automatic signing keys for bookworm and
# trixie, and Debian 12's debian-archive-keyring already holds both, so verification stays on
# with the stock keyring and no key needs to be fetched or trusted blindly.
write_unstable_sources() {
    cat >"$1" <<EOF
Types: deb
URIs: $(system_mirror)
Suites: unstable
Components: main
Signed-By: $keyring
EOF
}

install_bookworm_pebble() {
    local target="$cache/pebble-2.4" download_dir="$cache/apt-bookworm" version

    if have_binaries "$target"; then
        step "pebble 2.4: reusing $target"
        return
    fi

    # This uses the system's own sources; it only refreshes the package lists when a fresh
    # image has none yet.
    if ! apt-cache show pebble/bookworm >/dev/null 2>&1; then
        step "pebble 2.4: reading the Debian 12 package lists"
        apt-get -q update >/dev/null
    fi

    version=$(apt-cache show pebble/bookworm | awk '/^Version:/ { print $2; exit }')
    require_version "$version" 2.4 "Debian 12"

    step "pebble 2.4: downloading pebble $version"
    mkdir -p "$download_dir"
    rm -f -- "$download_dir"/pebble_*.deb
    (cd "$download_dir" && apt-get -q -oAPT::Sandbox::User=root download pebble/bookworm >/dev/null)

    step "pebble 2.4: unpacking into $target"
    unpack "$download_dir/pebble_"*.deb "$target"
}

# Pebble 2.4 has no -version flag and 2.10 as packaged reports "dev", so the check is that the
# binaries start on this system; the Debian version recorded at unpack time names the release.
verify() {
    local target=$1 binary

    for binary in pebble pebble-challtestsrv; do
        "$target/usr/bin/$binary" -h >/dev/null 2>&1 ||
            fail "$target/usr/bin/$binary does not run on this system"
    done
    printf '    %-6s %s (package %s)\n' "$(basename "$target" | cut -d- -f2)" \
        "$target/usr/bin/pebble" "$(cat "$target/package-version")"
}

main() {
    step "cache folder: $cache"
    mkdir -p "$cache"

    install_unstable_pebble
    install_bookworm_pebble

    step "checking that the binaries run"
    "$cache/pebble-2.10/usr/bin/pebble" -version >/dev/null ||
        fail "pebble 2.10 does not run on this system"
    verify "$cache/pebble-2.10"
    verify "$cache/pebble-2.4"

    step "done in ${SECONDS}s"
}

main "$@"
