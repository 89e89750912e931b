//! Waiting on descriptors: poll(2) over a set built once (raw: rustix's
//! `PollFd` borrows each descriptor, and a set kept beside the sockets it
//! names cannot borrow them), and the data plane's [`Wake`] (an eventfd,
//! through rustix).

use super::cvt;
use rustix::event::{EventfdFlags, eventfd};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// poll(2) on `fds` for at most `timeout`: how many are ready (0 when a
/// signal interrupted the wait).
pub fn poll(fds: &mut [libc::pollfd], timeout: std::time::Duration) -> io::Result<usize> {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: fds is a live array of fds.len() pollfds.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    match cvt(r) {
        Ok(n) => Ok(n as usize),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// A poll(2) set that waits for input on each of `fds`; built once and
/// polled again and again (poll rewrites only `revents`).
pub fn pollin(fds: impl Iterator<Item = i32>) -> Vec<libc::pollfd> {
    fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    })
    .collect()
}

/// Wakes a data-plane thread blocked in poll(2) on its sockets: the
/// control plane writes after it publishes a table or sends a request, so
/// an idle thread needs no short timeout to notice (each wake-up of an
/// idle core costs tens of microseconds in a VM). An eventfd, readable
/// until drained.
pub struct Wake(OwnedFd);

impl Wake {
    pub fn new() -> io::Result<Wake> {
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Wake(fd))
    }

    /// The descriptor to poll for reading.
    pub fn fd(&self) -> i32 {
        self.0.as_raw_fd()
    }

    /// Makes the descriptor readable (a full counter, which takes years of
    /// writes, leaves it readable all the same).
    pub fn wake(&self) {
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }

    /// Makes it unreadable again until the next wake().
    pub fn drain(&self) {
        // EAGAIN when not woken.
        let _ = rustix::io::read(&self.0, &mut [0u8; 8]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wake makes the descriptor readable for poll until drained.
    #[test]
    fn a_wake_is_seen_by_poll_until_drained() {
        let w = Wake::new().unwrap();
        let mut p = pollin([w.fd()].into_iter());
        assert_eq!(poll(&mut p, std::time::Duration::ZERO).unwrap(), 0);
        w.wake();
        w.wake();
        assert_eq!(poll(&mut p, std::time::Duration::ZERO).unwrap(), 1);
        w.drain();
        assert_eq!(poll(&mut p, std::time::Duration::ZERO).unwrap(), 0);
    }
}
