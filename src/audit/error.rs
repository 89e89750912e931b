//! Why an audit could not run, or a fix could not be applied: what `uvs
//! audit` prints before it exits 3.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `sysctl -a` line that is not "key = value" (`what`: the source).
    #[error("{what} line {line}: expected 'key = value', found '{text}'")]
    SysctlLine {
        what: String,
        line: usize,
        text: String,
    },
    #[error("{what} line {line}: bad key '{key}'")]
    SysctlKey {
        what: String,
        line: usize,
        key: String,
    },
    /// Text without the one key every `sysctl -a` has.
    #[error(
        "{what} has no net.ipv4.conf.all.arp_ignore: not the output of `sysctl -a`, or truncated"
    )]
    NotSysctl { what: String },
    /// `ip -j` output (`command`) that is not JSON.
    #[error("{what}: not valid `{command}` JSON: {source}")]
    Json {
        what: String,
        command: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// JSON, but not the array of `items` `ip -j` prints.
    #[error("{what}: expected a JSON array of {items}")]
    NotList { what: String, items: &'static str },
    /// Link `index` (from 1) of `ip -j addr`.
    #[error("{what}: link #{index} has no ifname")]
    NoIfname { what: String, index: usize },
    /// An address of `family` (inet, inet6) without its address.
    #[error("{what}: link {link} has an {family} address without 'local'")]
    NoLocal {
        what: String,
        link: String,
        family: &'static str,
    },
    #[error("{what}: link {link} address {addr} has no valid prefixlen")]
    BadPrefixLen {
        what: String,
        link: String,
        addr: std::net::IpAddr,
    },
    /// A dump directory without a file it needs (`command` makes it).
    #[error("{}: no {file} (save `{command}` into it)", dir.display())]
    Missing {
        dir: PathBuf,
        file: &'static str,
        command: &'static str,
    },
    /// A dump file that is not UTF-8 (valid up to byte `at`).
    #[error("{}: not UTF-8 text (byte {at})", path.display())]
    NotUtf8 { path: PathBuf, at: usize },
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad ssh target '{0}'")]
    SshTarget(String),
    /// A program (ssh, ip) or rtnetlink.
    #[error(transparent)]
    Host(#[from] crate::host::Error),
    /// The runtime the live host's netlink requests run on.
    #[error(transparent)]
    Runtime(std::io::Error),
    #[error("bad sysctl key {0}")]
    SysctlName(String),
    /// A key outside net.ipv4 and net.ipv6.conf, or one that would leave
    /// /proc/sys.
    #[error("refusing to write unexpected sysctl key '{0}'")]
    UnexpectedKey(String),
    #[error("cannot set {key} ({}): {source}", path.display())]
    Set {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An address fix that is not an `ip` command.
    #[error("refusing to run '{0}'")]
    Command(String),
    #[error("not changing anything without --yes when not interactive")]
    NotInteractive,
}
