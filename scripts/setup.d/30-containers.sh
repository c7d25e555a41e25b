#!/usr/bin/env bash
# The container matrix (tests/e2e/containers_test.ts) builds its Debian runner base offline with
# debootstrap from the apt mirror; rootless Podman needs /dev/fuse and /dev/net/tun usable by
# unprivileged users on machines where they are 0600. Idempotent; runs as root.
set -euo pipefail
if ! dpkg-query -W -f='${Status}' debootstrap 2>/dev/null | grep -q 'install ok installed'; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null ||
    { apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null &&
      apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null; }
fi
for d in /dev/fuse /dev/net/tun; do [[ -e $d ]] && chmod 0666 "$d"; done
exit 0
