//! The LVS vocabulary both planes and `uvsadm` speak, depending on
//! neither: virtual services and real servers ([`service`]), the immutable
//! forwarding [`table`] the control plane publishes to the data plane, the
//! [`stats`] counters the data plane bumps and listings read, and the
//! connection listing rows ([`ConnInfo`]).

pub mod service;
pub mod stats;
pub mod table;

use serde::{Deserialize, Serialize};
use service::Protocol;
use std::net::Ipv4Addr;

/// One row of `uvsadm -Lnc`: a connection as the data plane reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnInfo {
    pub protocol: Protocol,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
    pub daddr: Ipv4Addr,
    pub dport: u16,
    pub state: String,
    pub expires_secs: u64,
}
