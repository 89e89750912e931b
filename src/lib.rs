//! uvs: a userspace LVS-style layer-4 director.
//!
//! The crate is split the way LVS thinks: [`service`] (virtual services and
//! real servers), [`sched`] (schedulers), [`conn`] (the connection table),
//! [`dataplane`] (the forwarding loop over [`io::PacketIo`]), [`nat`]
//! (address and port translation for `-m`), and
//! [`control`] (the daemon side of `uvsadm`, which publishes immutable
//! [`table::Table`]s to the data plane). [`wire`] holds the packet views.

pub mod admin;
pub mod audit;
pub mod conn;
pub mod control;
pub mod dataplane;
pub mod decap;
pub mod gso;
pub mod io;
pub mod nat;
pub mod probe;
pub mod sched;
pub mod service;
pub mod stats;
mod sys;
pub mod table;
pub mod wire;
