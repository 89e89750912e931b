#!/usr/bin/env bash
# Builds target/debian/uvs_VERSION_ARCH.deb with Debian's own dpkg-deb from
# a staging root that scripts/install.sh fills (DESTDIR): the same files a
# source install gives, no cargo-deb to install (docs/install.md).
#
#   scripts/deb.sh [--bin-dir DIR] [--fast]
#
# --bin-dir DIR  package uvs and uvsadm from DIR (default: a release build)
# --fast         gzip -1 instead of xz (the tests)
# Prints the package's path. DEBFULLNAME and DEBEMAIL name the maintainer.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "deb.sh: $*" >&2; exit 1; }
trap 'echo "deb.sh: failed at line $LINENO" >&2' ERR
bin_dir=()
compress=(-Zxz)
while [[ $# -gt 0 ]]; do
  case $1 in
    --bin-dir) [[ $# -ge 2 ]] || die "--bin-dir needs a directory"; bin_dir=(--bin-dir "$2"); shift 2 ;;
    --fast) compress=(-Zgzip -z1); shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (a Debian system is needed)"
version=$(sed -n '/^\[package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
[[ -n $version ]] || die "no version in Cargo.toml's [package]"
out=target/debian
stage=$out/uvs_${version}_$arch
rm -rf "$stage"
mkdir -p "$stage"
# Installed as root owns them (dpkg-deb --root-owner-group), stripped as
# Debian ships programs.
DESTDIR=$PWD/$stage PREFIX=/usr SYSCONFDIR=/etc scripts/install.sh "${bin_dir[@]}" --strip >/dev/null
doc=$stage/usr/share/doc/uvs
install -d "$doc"
maintainer="${DEBFULLNAME:-uvs developers} <${DEBEMAIL:-uvs@localhost}>"
# Dates from the sources (the last commit), so a rebuild gives the same files.
when=$(git log -1 --format=%ct 2>/dev/null || date +%s)
since=$(git log --format=%ad --date=format:%Y 2>/dev/null | tail -n 1)
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: uvs
License: MIT or Apache-2.0

Files: *
Copyright: ${since:-$(date -d "@$when" +%Y)} the uvs developers
License: MIT or Apache-2.0
 uvs is dual-licensed under the MIT license and the Apache License,
 Version 2.0. On Debian systems the Apache License is in
 /usr/share/common-licenses/Apache-2.0.
EOF
# A native package's changelog: the version and where it came from.
{
  printf 'uvs (%s) unstable; urgency=medium\n\n' "$version"
  printf '  * Built by scripts/deb.sh from %s.\n\n' "$(git describe --always --dirty 2>/dev/null || echo 'the sources')"
  printf ' -- %s  %s\n' "$maintainer" "$(date -R -d "@$when")"
} | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/copyright" "$doc/changelog.gz"

# Shared libraries the programs link: from dpkg-shlibdeps where dpkg-dev
# is installed, else what a Rust program on glibc links (libc, libgcc_s).
depends="libc6, libgcc-s1"
if command -v dpkg-shlibdeps >/dev/null; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir "$work/debian"
  printf 'Source: uvs\n\nPackage: uvs\nArchitecture: any\n' >"$work/debian/control"
  bins=("$PWD/$stage/usr/sbin/uvs" "$PWD/$stage/usr/sbin/uvsadm")
  line=$(cd "$work" && dpkg-shlibdeps -O "${bins[@]}" 2>/dev/null) || line=
  [[ $line == shlibs:Depends=* ]] && depends=${line#shlibs:Depends=}
fi

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
install -d -m 0755 "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<EOF
Package: uvs
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Suggests: keepalived
Section: net
Priority: optional
Description: userspace LVS-style layer-4 load-balancing director
 uvs balances TCP and UDP between real servers as Linux Virtual Server
 (IPVS) does, in userspace: direct routing, IP-in-IP tunnelling and NAT,
 IPVS's schedulers, persistence and firewall-mark services, health
 checks, and failover between two directors with connection sync.
 .
 uvsadm speaks ipvsadm's command line and prints its listings; uvs
 imports keepalived.conf's virtual servers. The systemd unit uvs.service
 runs the director from /etc/uvs/uvs.toml; it is not started on install.
EOF
echo /etc/uvs/uvs.toml >"$stage/DEBIAN/conffiles"

# Maintainer scripts: systemd is told of the unit only where it runs
# (never in a chroot or an image build, where DPKG_ROOT names the root);
# the service is never started here, only stopped before removal.
running='[ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]'
cat >"$stage/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
if [ "\$1" = configure ] && $running; then
	systemctl daemon-reload || true
	if systemctl is-active --quiet uvs.service; then
		echo "uvs: the running director is the old version until: systemctl restart uvs"
	fi
fi
exit 0
EOF
cat >"$stage/DEBIAN/prerm" <<EOF
#!/bin/sh
set -e
if [ "\$1" = remove ] && $running; then
	systemctl stop uvs.service || true
fi
exit 0
EOF
cat >"$stage/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
# Purged: the links \`systemctl enable uvs\` made go too (the unit is gone).
if [ "\$1" = purge ]; then
	rm -f "\${DPKG_ROOT:-}/etc/systemd/system/multi-user.target.wants/uvs.service"
fi
if [ "\$1" = remove ] || [ "\$1" = purge ]; then
	if $running; then
		systemctl daemon-reload || true
	fi
fi
exit 0
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles"
deb=$out/uvs_${version}_$arch.deb
dpkg-deb --root-owner-group "${compress[@]}" --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb"
