//! The control plane: the configuration model, the request protocol spoken
//! over the daemon's Unix socket, and the server that applies requests and
//! publishes new tables to the data plane.

pub mod model;
pub mod netlink;
pub mod proto;
pub mod server;
