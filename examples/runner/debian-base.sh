#!/usr/bin/env bash
# Makes the Debian 12 root filesystem the tsk runner image starts FROM, offline except for the
# Debian mirror this machine's apt already uses: `debootstrap --variant=minbase` plus the packages
# the sandbox modes need (uidmap: subuid ranges; proot: RUN without namespaces; attr; runc).
# Writes a deterministic tar (sorted, numeric owners, fixed mtimes) and caches it:
#   examples/runner/debian-base.sh [OUT.tar]   (default /var/cache/tsk-runner/debian-bookworm.tar)
# A rerun with the tar present does nothing. Runs as root (debootstrap needs it).
set -euo pipefail
out=${1:-/var/cache/tsk-runner/debian-bookworm.tar}
[[ -s $out ]] && { echo "$out"; exit 0; }
[[ $(id -u) -eq 0 ]] || { echo "debian-base.sh: run as root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "debian-base.sh: install debootstrap" >&2; exit 1; }
mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1=="deb" { for (i=2;i<=NF;i++) if ($i ~ /^https?:\/\//) { if ($(i+1)=="bookworm") { print $i; exit } } }' || true)
fi
if [[ -z $mirror ]]; then
  mirror=$(awk 'BEGIN{RS=""; FS="\n"} /Suites:[^\n]*bookworm( |$)/ && !/security/ {
      for (i=1;i<=NF;i++) if ($i ~ /^URIs:/) { split($i, a, " "); print a[2]; exit } }' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$(dirname "$out")"
# One debootstrap at a time (test runs in several checkouts share the cache).
exec 9>"$out.lock"
flock 9
[[ -s $out ]] && { echo "$out"; exit 0; }
work=$(mktemp -d "$(dirname "$out")/rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=uidmap,proot,attr,runc,ca-certificates \
  bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }
r=$work/root
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* \
  "$r"/var/log/apt/* "$r"/dev/* "$r"/run/* "$r"/tmp/* "$r"/etc/hostname "$r"/proc/* "$r"/sys/*
find "$r/var/log" -type f -name '*.log' -delete
mkdir -p "$r/var/lib/apt/lists/partial"
: >"$r/etc/resolv.conf"
tar -C "$r" --sort=name --numeric-owner --mtime=@946684800 --xattrs -cf "$out.$$.new" .
mv "$out.$$.new" "$out"
echo "$out"
