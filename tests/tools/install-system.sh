#!/usr/bin/env bash
# Install the Debian 12 packages that building and testing vcs-acme need, when missing.
# Run as root (or with sudo available); prints what it would install otherwise.
set -euo pipefail

packages=(python3 python3-venv python3-pip ca-certificates openssl openssh-server openssh-client systemd bind9 bind9-dnsutils)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

# A Python from elsewhere (pyenv, a distribution build) that has venv needs no Debian python.
if python3 -c 'import venv, ensurepip' 2>/dev/null; then
    filtered=()
    for package in "${missing[@]}"; do
        case "$package" in python3 | python3-venv | python3-pip) ;; *) filtered+=("$package") ;; esac
    done
    missing=("${filtered[@]+"${filtered[@]}"}")
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "==> system packages: all present"
    exit 0
fi

echo "==> installing system packages: ${missing[*]}"
run=()
[[ $(id -u) -eq 0 ]] || run=(sudo)
"${run[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

# The tests start their own BIND on free loopback ports; the system service that Debian
# enables with the package would only hold port 53. Stop it when we installed it here.
if [[ " ${missing[*]} " == *" bind9 "* ]] && [[ -d /run/systemd/system ]]; then
    echo "==> stopping the system's named service (the tests run their own)"
    "${run[@]}" systemctl disable --now named.service || true
fi
