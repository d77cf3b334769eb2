#!/usr/bin/env bash
# Make sure the commands of the given Debian packages are on PATH, installing what is missing.
#   scripts/ensure-debian-packages.sh prometheus kubernetes-client
#   scripts/ensure-debian-packages.sh orthanc orthanc-dicomweb dicom3tools
#   scripts/ensure-debian-packages.sh chromium fonts-thai-tlwg   (the browser tests)
#   scripts/ensure-debian-packages.sh poppler-utils   (python -m bench study: the study's PDF rasteriser)
# Idempotent: a package whose commands already resolve (`command -v`) is skipped, so a
# newer kubectl already on PATH is kept. `apt-get update` runs only when apt does not know a
# package yet, or an install from the current lists fails. Needs root or passwordless sudo;
# fails loudly otherwise. Tests call it from session fixtures.
# Packages that ship a system service (orthanc, prometheus) must not start it: the tests run
# their own instances on free ports. While installing, a policy-rc.d refuses every service
# start (unless the machine already has one, as Docker images do), and a service systemd
# started anyway is stopped and disabled afterwards.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 PACKAGE..." >&2
    exit 2
fi

# Commands that prove a package is present. Unknown packages fall back to dpkg's status.
commands_for() {
    case "$1" in
        prometheus) echo "prometheus promtool" ;;
        kubernetes-client) echo "kubectl" ;;
        orthanc) echo "Orthanc" ;;
        dicom3tools) echo "dciodvfy" ;;
        chromium) echo "chromium" ;;
        poppler-utils) echo "pdftoppm" ;;
        *) echo "" ;;
    esac
}

present() {
    local pkg="$1" cmds cmd
    cmds="$(commands_for "$pkg")"
    if [ -z "$cmds" ]; then
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"
        return
    fi
    for cmd in $cmds; do
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || return 1
    done
}

# Services the packages above would start at install time.
services_for() {
    case "$1" in
        orthanc) echo "orthanc" ;;
        prometheus) echo "prometheus" ;;
        *) echo "" ;;
    esac
}

missing=()
for pkg in "$@"; do
    present "$pkg" || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-debian-packages: need ${missing[*]} but apt-get is not available; install them by hand" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "ensure-debian-packages: need root or passwordless sudo to install ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
known() { apt-cache show "$1" >/dev/null 2>&1; }
# Several test sessions may install at once: wait for dpkg's lock instead of failing.
install() {
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"
}

POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# ensure-debian-packages: no service starts while installing\nexit 101\n' |
        "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi

echo "ensure-debian-packages: installing ${missing[*]}" >&2
need_update=0
for pkg in "${missing[@]}"; do
    known "$pkg" || need_update=1
done
if [ "$need_update" -eq 1 ]; then
    "${SUDO[@]}" apt-get update -q
fi
if ! install; then
    [ "$need_update" -eq 1 ] && exit 1
    "${SUDO[@]}" apt-get update -q
    install
fi

for pkg in "${missing[@]}"; do
    for service in $(services_for "$pkg"); do
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            "${SUDO[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
        fi
    done
    if ! present "$pkg"; then
        echo "ensure-debian-packages: $pkg installed but its commands ($(commands_for "$pkg")) are not on PATH" >&2
        exit 1
    fi
done
