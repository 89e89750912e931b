//! `uvsadm`: the ipvsadm-compatible client. Parsing and formatting are
//! library code so they can be tested against ipvsadm's exact behaviour
//! without a daemon.

pub mod args;
pub mod client;
pub mod drain;
pub mod format;
pub mod manual;
pub mod names;
pub mod quiesce;
pub mod restore;
pub mod top;
pub mod trace;
