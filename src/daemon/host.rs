//! What the host must be before the director starts, and what it holds
//! while it runs: forwarding off, the control socket (mode 0600), one
//! lock per interface, the links up.

use super::Error;
use crate::host::sys;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

/// The kernel must stay quiet about VIP traffic: with forwarding on it
/// would route (or redirect) the very frames uvs forwards, and in NAT it
/// would also pass real servers' replies on untranslated.
pub(super) fn preflight(ifname: &str) -> Result<(), Error> {
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding");
    let v = match std::fs::read_to_string(&path) {
        Ok(v) => v,
        Err(source) => return Err(Error::ReadForwarding { path, source }),
    };
    if v.trim() != "0" {
        return Err(Error::Forwarding {
            link: ifname.to_string(),
            path,
            value: v.trim().to_string(),
        });
    }
    preflight6(ifname)
}

/// IPv6 has no per-link forwarding switch for transit packets: the kernel
/// forwards when `all.forwarding` is on, or the link's `force_forwarding`
/// (Linux 6.17 and later). A host without IPv6 has neither file.
fn preflight6(ifname: &str) -> Result<(), Error> {
    // (A link's name may hold dots: the path is not the key with slashes.)
    for (dev, what) in [("all", "forwarding"), (ifname, "force_forwarding")] {
        let path = format!("/proc/sys/net/ipv6/conf/{dev}/{what}");
        let key = format!("net.ipv6.conf.{dev}.{what}");
        let on = std::fs::read_to_string(&path).is_ok_and(|v| v.trim() != "0");
        if on {
            return Err(Error::Forwarding6 { path, key });
        }
    }
    Ok(())
}

/// The control socket, created mode 0600 (the umask is narrowed around
/// bind(2), so there is no moment at which anyone else may connect) in a
/// directory created 0700 if it is missing. An existing path is removed
/// only if it is a socket that no daemon answers on: a live daemon makes
/// this start fail, and any other kind of file is left alone.
pub(super) fn bind_socket(path: &Path) -> Result<UnixListener, Error> {
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| Error::SocketDir {
                dir: dir.to_path_buf(),
                source,
            })?;
    }
    let path_buf = || path.to_path_buf();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::NotASocket(path_buf()));
        }
        match UnixStream::connect(path) {
            Ok(_) => return Err(Error::AlreadyListening(path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(|source| Error::RemoveStale {
                    path: path_buf(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(Error::CheckSocket {
                    path: path_buf(),
                    source,
                });
            }
        }
    }
    let old = sys::umask(0o177);
    let bound = UnixListener::bind(path);
    sys::umask(old);
    let l = bound.map_err(|source| Error::Listen {
        path: path_buf(),
        source,
    })?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Tries `f` until it succeeds, `again` says its error is not worth
/// another try, or `limit` has passed: what the new side of a handoff
/// does while the old director lets go of its locks and socket.
pub(super) fn retry<T>(
    limit: Duration,
    mut f: impl FnMut() -> Result<T, Error>,
    again: impl Fn(&Error) -> bool,
) -> Result<T, Error> {
    let t = std::time::Instant::now();
    loop {
        match f() {
            Err(e) if again(&e) && t.elapsed() < limit => {
                std::thread::sleep(Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

/// Removes the control socket at exit if it is still the one this daemon
/// made (another may have replaced it since).
pub(super) fn remove_socket(path: &Path, ours: Option<(u64, u64)>) {
    use std::os::unix::fs::MetadataExt;
    let now = std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()));
    if now.is_some() && now == ours {
        let _ = std::fs::remove_file(path);
    }
}

/// One director per interface per network namespace: an abstract Unix
/// socket named after the interface index is the lock. Abstract names are
/// private to the network namespace and vanish with the process, so a
/// crash leaves nothing stale. Two directors on one interface would each
/// forward every frame (duplicates, resets with different tables).
fn lock_interface(name: &str, index: u32) -> Result<UnixListener, Error> {
    use std::os::linux::net::SocketAddrExt;
    let lock_name = format!("uvs-director/ifindex/{index}");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(lock_name.as_bytes())?;
    match UnixListener::bind_addr(&addr) {
        Ok(l) => {
            l.set_nonblocking(true)?;
            Ok(l)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let holder = UnixStream::connect_addr(&addr)
                .ok()
                .and_then(|s| sys::peer_pid(&s).ok())
                .map(|pid| {
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                        .unwrap_or_default();
                    format!("pid {pid}: {}", cmd.trim())
                })
                .unwrap_or_else(|| "pid unknown".into());
            Err(Error::InterfaceTaken {
                link: name.to_string(),
                holder,
            })
        }
        Err(source) => Err(Error::Lock {
            link: name.to_string(),
            source,
        }),
    }
}

/// Takes the interface locks; after a handoff, waits (up to 10 s) for
/// the old director to let go of them.
pub(super) fn lock_interfaces(
    names: &[String],
    indexes: &[u32],
    wait: bool,
) -> Result<Vec<UnixListener>, Error> {
    let take = || {
        names
            .iter()
            .zip(indexes)
            .map(|(n, i)| lock_interface(n, *i))
            .collect()
    };
    retry(Duration::from_secs(10), take, |_| wait)
}

/// Refuses what can never carry VIP traffic and waits (saying so) for a
/// link that is down to come up.
pub(super) fn check_link(name: &str) -> Result<(), Error> {
    let flags = sys::link_flags(name)?;
    if flags & libc::IFF_LOOPBACK as u32 != 0 {
        return Err(Error::Loopback(name.to_string()));
    }
    if !sys::link_is_up(flags) {
        tracing::warn!("{name} is down; waiting for it to come up");
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let flags = sys::link_flags(name).map_err(|source| Error::LinkGone {
                link: name.to_string(),
                source,
            })?;
            if sys::link_is_up(flags) {
                tracing::info!("{name} is up");
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Logs each interface's down and up, and returns (with the reason) when
/// one disappears or is replaced by another of the same name: the packet
/// sockets would then capture nothing, silently.
pub(super) async fn watch_links(links: Vec<(u32, String)>) -> Error {
    let mut up: Vec<bool> = vec![true; links.len()];
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for ((index, name), was_up) in links.iter().zip(up.iter_mut()) {
            match sys::ifindex(name) {
                Ok(i) if i as u32 == *index => {}
                Ok(_) => return Error::Replaced(name.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Error::Disappeared(name.clone());
                }
                // Cannot tell now (out of descriptors): look again later.
                Err(_) => continue,
            }
            let Ok(flags) = sys::link_flags(name) else {
                continue;
            };
            let now_up = sys::link_is_up(flags);
            if now_up != *was_up {
                match now_up {
                    true => tracing::info!("{name} is up again"),
                    false => tracing::warn!("{name} went down: no traffic until it is up"),
                }
                *was_up = now_up;
            }
        }
    }
}
