//! The LVS vocabulary both planes and `uvsadm` speak, and the contract
//! between the planes, depending on neither: virtual services and real
//! servers ([`service`], [`dest`]), the schedulers ([`sched`]), the
//! immutable forwarding [`table`] the control plane publishes to the data
//! plane, the [`stats`] counters the data plane bumps and listings read,
//! connections ([`conn`]: key, state, portable form, listing rows), what
//! connection sync carries ([`sync`]) and the questions the control plane
//! asks the data plane ([`request`]).

pub mod conn;
pub mod dest;
pub mod mark;
pub mod request;
pub mod sched;
pub mod service;
pub mod stats;
pub mod sync;
pub mod table;

pub use conn::ConnInfo;
