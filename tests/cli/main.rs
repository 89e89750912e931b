//! The programs on their own, without a lab or root: `uvs`'s command-line
//! checks, `uvs audit` on recorded host dumps (IPv4 and IPv6), and `uvs import-keepalived`
//! on keepalived.conf files, and dist/uvs.service checked by systemd-analyze.

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
mod migrating;
mod unit_file;
