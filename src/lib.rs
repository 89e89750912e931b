//! uvs: a userspace LVS-style layer-4 director.
//!
//! Layers, bottom up (see docs/architecture.md for the map):
//! - [`wire`] checked packet views and [`host`] the host's facts and
//!   syscalls (netlink, raw sockets);
//! - [`lvs`] the vocabulary both planes speak: services, real servers,
//!   the published [`lvs::table::Table`], counters, connection listings;
//! - [`io`] packet I/O backends, [`dataplane`] the forwarding loop over
//!   them, and [`control`] the control plane that publishes tables;
//! - on top: [`daemon`] (assembling `uvs director`), [`admin`] (`uvsadm`),
//!   [`audit`], [`probe`] and [`decap`]; [`rig`] the planes assembled in
//!   memory for the tests and benchmarks.

pub mod admin;
pub mod audit;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;

pub mod decap;
pub mod ha;
pub mod host;
pub mod import;
pub mod io;
#[cfg(test)]
mod layering;
pub mod logging;
pub mod lvs;
pub mod probe;
pub mod rig;
pub mod wire;
