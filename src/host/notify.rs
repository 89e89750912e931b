//! The service manager's side of the host: what uvs tells systemd
//! (sd_notify(3): `READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=`,
//! `WATCHDOG=1`) over the datagram socket `NOTIFY_SOCKET` names, through
//! the `sd-notify` crate. Without `NOTIFY_SOCKET` (not started by
//! systemd, or not `Type=notify`) every call does nothing. A message that
//! cannot be sent is logged, never fatal: the director forwards whether
//! or not systemd hears it.

use sd_notify::NotifyState;
use std::time::Duration;

/// Whether systemd listens (`NOTIFY_SOCKET` is set).
pub fn listening() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!("cannot tell systemd {states:?}: {e}");
    }
}

/// The director forwards: `status` is what `systemctl status` shows.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload starts (`READY=1` follows when it is done, applied or not).
/// `MONOTONIC_USEC` tells systemd which reload this is (systemd 253 and
/// later want it with `RELOADING=1`; older ones ignore it).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading"),
        ]),
        Err(_) => send(&[NotifyState::Reloading, NotifyState::Status("reloading")]),
    }
}

/// The director is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Feeds the watchdog once.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The watchdog's interval (`WATCHDOG_USEC`), when systemd set one for
/// this process (`WATCHDOG_PID`, if set, is this process).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}
