//! Why a probe could not run (exit status 3): not that a method fails,
//! but that the probe itself could not tell.

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rtnetlink (its connection, the route to the real server).
    #[error(transparent)]
    Host(#[from] crate::host::Error),
    /// The next hop towards the real server can never work as routed.
    #[error(transparent)]
    Resolve(#[from] crate::control::resolve::ResolveError),
    /// The next hop does not resolve yet: why.
    #[error("{0}")]
    Unresolved(String),
    #[error("{0} is an address of this host")]
    Local(IpAddr),
    #[error("no route to real server {0}")]
    NoRoute(IpAddr),
    /// The director's address must be of the real server's family, the
    /// client's of the VIP's.
    #[error("{0} {1} is not of the family of {2}")]
    Family(&'static str, IpAddr, &'static str),
    #[error("{link}: {source}")]
    Link {
        link: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} has no {1} address; give --source")]
    NoAddress(String, &'static str),
    /// The probe's UDP port is the control port + 1.
    #[error("--port {0} leaves no room for the probe port")]
    NoProbePort(u16),
    #[error(
        "cannot reach the responder at {addr} ({source}); start `uvs probe --responder` on the \
         real server"
    )]
    Unreachable {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The packet socket to send the probes on.
    #[error("cannot send on {link}: {source} (root?)")]
    Open {
        link: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot send on {link}: {source}")]
    Send {
        link: String,
        #[source]
        source: std::io::Error,
    },
    #[error("probe frame too big")]
    TooBig,
    /// Asking the responder for its report.
    #[error("responder: {0}")]
    Ask(#[source] std::io::Error),
    #[error("no answer from the responder: {0}")]
    NoAnswer(#[source] std::io::Error),
    /// The responder answered `ERR ...`.
    #[error("the responder refused the request: {0}")]
    Refused(String),
    /// The responder's answer (its start) is not its JSON report.
    #[error("unreadable answer from the responder ({source}): {line:.80}")]
    Unreadable {
        line: String,
        #[source]
        source: serde_json::Error,
    },
    /// The responder's packet socket (it needs root).
    #[error("cannot open a packet socket (root?): {0}")]
    Capture(#[source] std::io::Error),
    #[error("cannot bind UDP port {port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on TCP port {port}: {source}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    /// A socket option or the runtime the route lookups run on.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
