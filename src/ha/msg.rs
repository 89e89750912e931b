//! The heartbeat between directors, as `wire::ha::heartbeat` checks and
//! writes it.

pub use crate::wire::ha::Refused;
pub use crate::wire::ha::heartbeat::{Heartbeat, LEN};
