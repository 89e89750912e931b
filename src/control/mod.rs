//! The control plane: the configuration model, the request protocol spoken
//! over the daemon's Unix socket, the server that applies requests, the
//! host lookups that turn real servers into next hops, and the publisher
//! that hands each new table to the data plane, and the task that feeds
//! systemd's watchdog while the data plane turns.

pub mod acd;
pub mod bgp;
pub mod check;
pub mod health;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod proto;
pub mod publish;
pub mod resolve;
pub mod server;
pub mod trace;
pub mod watchdog;
pub mod workers;
