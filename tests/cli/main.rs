//! The programs on their own, without a lab or root: `uvs`'s command-line
//! checks, `uvs audit` on recorded host dumps (IPv4 and IPv6), `uvs import-keepalived`
//! on keepalived.conf files, dist/uvs.service checked by systemd-analyze, and the
//! install: scripts/install.sh, the .deb, the man pages and completions (the .deb's
//! dpkg install needs root).

#[path = "../support/audit.rs"]
mod audit;
#[path = "../support/keepalived.rs"]
mod keepalived;
#[path = "../support/text.rs"]
mod text;

mod audit_dump;
mod audit_dump6;
mod flags;
mod import_keepalived;
mod import_vrrp;
mod install;
mod migrating;
mod unit_file;
