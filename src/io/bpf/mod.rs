//! uvs's kernel programs, in one place for both backends: the C source
//! (uvs.bpf.c, built with clang by build.rs and embedded), the structs its
//! maps hold (maps.h, mirrored and layout-checked in `maps.rs`), and the
//! one loader, [`Steering`]. The object holds two programs:
//! - `uvs_steer`, in XDP, for the AF_XDP backend (`io/xdp/`): it steers
//!   the frames uvs handles into the AF_XDP sockets (the claim maps,
//!   `claims.rs`) and forwards offloaded flows;
//! - `uvs_tc_forward`, in tc ingress, for the AF_PACKET backends'
//!   `--offload`: it forwards offloaded flows only.
//!
//! Both share the flow maps' layout (`flows.rs`), so either backend hands
//! a flow over, takes it back and counts what it forwarded alike. A uvs
//! built without clang has no programs and says so.

mod claims;
mod events;
pub mod flows;
mod maps;
mod sched;
#[cfg(all(test, uvs_xdp))]
mod test_frames;
#[cfg(test)]
mod test_run;
#[cfg(test)]
mod test_sched;
#[cfg(test)]
mod test_tun;
mod workers;

use claims::Claims;
pub use flows::FlowMaps;
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use crate::lvs::table::Table;

#[cfg(uvs_xdp)]
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/uvs.bpf.o"));

/// Which program a link gets, and so how it is attached: the only
/// difference between the two load paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    /// `uvs_steer` in XDP.
    Xdp,
    /// `uvs_tc_forward` in tc ingress; `egress`: always out of the link's
    /// transmit, never to a veth peer (`--offload-egress`).
    Tc { egress: bool },
}

#[cfg(uvs_xdp)]
impl Hook {
    fn program(self) -> &'static str {
        match self {
            Hook::Xdp => "uvs_steer",
            Hook::Tc { .. } => "uvs_tc_forward",
        }
    }

    /// The program's name in messages.
    fn what(self) -> &'static str {
        match self {
            Hook::Xdp => "XDP",
            Hook::Tc { .. } => "tc",
        }
    }
}

/// The program attached to one link, with its maps.
struct LinkProgram {
    bpf: aya::Ebpf,
    mode: &'static str,
}

/// The programs of all director links, and what their maps hold.
pub struct Steering {
    links: Vec<LinkProgram>,
    held: Claims,
    /// What `fast` holds: whether the programs forward offloaded flows.
    fast: Option<bool>,
    /// The tc program forwards offloaded flows only and steers nothing,
    /// so its claim maps stay empty.
    hook: Hook,
    /// With `--offload`, each link's MAC: the programs schedule new
    /// flows themselves (`sched.rs`).
    scheduler_macs: Option<Vec<[u8; 6]>>,
    scheduling: sched::Scheduling,
}

/// What failed loading, attaching or updating the kernel programs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// uvs was built without clang: `what` it lacks.
    #[error(
        "this uvs was built without its {what} (clang and libbpf-dev were missing at build time)"
    )]
    NotBuilt { what: &'static str },
    #[error("no such link")]
    NoSuchLink,
    /// The object lacks a map (`program` names the object).
    #[error("{program} has no {map} map")]
    NoMap { program: &'static str, map: String },
    /// The object lacks a program (`object` names the object).
    #[error("{object} has no {program}")]
    NoProgram {
        object: &'static str,
        program: &'static str,
    },
    /// A map is not of the kind expected, or refused an update.
    #[error("{map}: {source}")]
    Map {
        map: String,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("registering queue {queue}: {source}")]
    Register {
        queue: u32,
        #[source]
        source: aya::maps::MapError,
    },
    /// The object would not load (`what`: "XDP" or "tc").
    #[error("loading the {what} program: {source}")]
    Load {
        what: &'static str,
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// A program is not of the kind expected.
    #[error("{program}: {source}")]
    Kind {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The verifier (or the kernel) refused the program.
    #[error("the kernel refused the {what} program: {source}")]
    Refused {
        what: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("attaching the tc program to {link}: {source}")]
    AttachTc {
        link: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("attaching XDP to {link}: {source}")]
    AttachXdp {
        link: String,
        #[source]
        source: aya::programs::ProgramError,
    },
}

impl Error {
    /// A map of the XDP program's, missing.
    fn no_map(map: &str) -> Error {
        Error::NoMap {
            program: "the XDP program",
            map: map.to_string(),
        }
    }

    /// A map error, on map `map`.
    fn map(map: &str) -> impl FnOnce(aya::maps::MapError) -> Error {
        move |source| Error::Map {
            map: map.to_string(),
            source,
        }
    }
}

impl Steering {
    /// Loads the XDP program and attaches it to every link (the driver's
    /// native XDP, else the kernel's generic XDP), retrying for up to 2 s
    /// while another program holds a link (a director handing over).
    pub fn attach(ifnames: &[String]) -> Result<Steering, Error> {
        Steering::load(ifnames, Hook::Xdp)
    }

    /// Loads the tc program (`uvs_tc_forward`) and attaches it to every
    /// link's ingress, for the AF_PACKET backends' `--offload`. TCX (Linux
    /// 6.6) ties it to uvs's descriptors, so it goes when uvs does, crash
    /// included; an older kernel gets a clsact qdisc and a filter. On a
    /// veth whose peer is in another namespace the program hands frames
    /// to the peer, unless `egress` (`--offload-egress`).
    pub fn attach_tc(ifnames: &[String], egress: bool) -> Result<Steering, Error> {
        Steering::load(ifnames, Hook::Tc { egress })
    }

    fn load(ifnames: &[String], hook: Hook) -> Result<Steering, Error> {
        #[cfg(not(uvs_xdp))]
        {
            let _ = ifnames;
            Err(Error::NotBuilt {
                what: match hook {
                    Hook::Xdp => "XDP program",
                    Hook::Tc { .. } => "BPF programs",
                },
            })
        }
        #[cfg(uvs_xdp)]
        {
            let links = ifnames
                .iter()
                .map(|name| LinkProgram::attach(name, hook))
                .collect::<Result<_, _>>()?;
            Ok(Steering {
                links,
                held: Claims::default(),
                fast: None,
                hook,
                scheduler_macs: None,
                scheduling: sched::Scheduling::default(),
            })
        }
    }

    /// How the program runs on each link ("native" or "generic" XDP,
    /// "tc").
    pub fn modes(&self) -> Vec<&'static str> {
        self.links.iter().map(|l| l.mode).collect()
    }

    /// Points link `link`'s receive queue `queue` at AF_XDP socket `sock`.
    pub fn register(&mut self, link: usize, queue: u32, sock: impl AsRawFd) -> Result<(), Error> {
        let l = self.links.get_mut(link).ok_or(Error::NoSuchLink)?;
        let map = l.bpf.map_mut("xsks").ok_or_else(|| Error::no_map("xsks"))?;
        let mut xsks: aya::maps::XskMap<_> = map.try_into().map_err(Error::map("xsks"))?;
        xsks.set(queue, sock, 0)
            .map_err(|source| Error::Register { queue, source })
    }

    /// From the next table on, the programs schedule the new flows of the
    /// services they can themselves (`sched.rs`); `macs`: each link's.
    pub fn schedule_new_flows(&mut self, macs: &[[u8; 6]]) {
        self.scheduler_macs = Some(macs.to_vec());
        self.fast = None;
    }

    /// Brings the programs' scheduling tables to `table` (after it is
    /// published: a flow they schedule names a real server the data
    /// plane's table has).
    pub fn update_scheduling(&mut self, table: &Table) -> Result<(), Error> {
        let Some(macs) = &self.scheduler_macs else {
            return Ok(());
        };
        let want = (0..self.links.len())
            .map(|i| {
                let mac = macs.get(i).copied().unwrap_or_default();
                sched::KernelTable::of(table, i as u8, mac)
            })
            .collect();
        let mut bpfs: Vec<&mut aya::Ebpf> = self.links.iter_mut().map(|l| &mut l.bpf).collect();
        self.scheduling.sync(&mut bpfs, want)
    }

    /// Makes the maps claim what `table` serves: inserts what is new and
    /// removes what is gone, so a frame in flight never meets an empty map.
    pub fn update(&mut self, table: &Table, locals: &[IpAddr]) -> Result<(), Error> {
        // A backup forwards nothing, offloaded flows included.
        let fast = !table.standby;
        if self.fast != Some(fast) {
            // [1]: new flows scheduled by the programs, on an active
            // director with `--offload` only.
            let schedules = fast && self.scheduler_macs.is_some();
            for l in &mut self.links {
                let map = l.bpf.map_mut("fast").ok_or_else(|| Error::no_map("fast"))?;
                let mut a: aya::maps::Array<_, u32> = map.try_into().map_err(Error::map("fast"))?;
                a.set(0, u32::from(fast), 0).map_err(Error::map("fast"))?;
                a.set(1, u32::from(schedules), 0)
                    .map_err(Error::map("fast"))?;
            }
            self.fast = Some(fast);
        }
        if self.hook != Hook::Xdp {
            return Ok(());
        }
        let want = Claims::of(table, locals);
        if want == self.held {
            return Ok(());
        }
        for l in &mut self.links {
            self.held.sync(&mut l.bpf, &want)?;
        }
        self.held = want;
        Ok(())
    }
}

#[cfg(uvs_xdp)]
impl LinkProgram {
    /// Loads the object for link `name` and attaches `hook`'s program.
    fn attach(name: &str, hook: Hook) -> Result<LinkProgram, Error> {
        use aya::programs::{SchedClassifier, Xdp};
        let what = hook.what();
        // Only the tc program reads it; the XDP program's XDP_TX already
        // hands a frame to a veth's peer.
        let to_peer = match hook {
            Hook::Tc { egress } => !egress && crate::host::sys::peer_in_other_namespace(name),
            Hook::Xdp => false,
        };
        let mut bpf = aya::EbpfLoader::new()
            .override_global("to_peer", &u32::from(to_peer), true)
            .override_global(
                "virtual_link",
                &u32::from(crate::host::sys::is_virtual_pair(name)),
                true,
            )
            .load(PROGRAM)
            .map_err(|x| Error::Load {
                what,
                source: Box::new(x),
            })?;
        let prog = bpf.program_mut(hook.program()).ok_or(Error::NoProgram {
            object: match hook {
                Hook::Xdp => "the XDP program",
                Hook::Tc { .. } => "the BPF object",
            },
            program: hook.program(),
        })?;
        let refused = |source| Error::Refused { what, source };
        let kind = |source| Error::Kind {
            program: hook.program(),
            source,
        };
        let mode = match hook {
            Hook::Xdp => {
                let p: &mut Xdp = prog.try_into().map_err(kind)?;
                p.load().map_err(refused)?;
                attach_xdp(p, name)?
            }
            Hook::Tc { .. } => {
                let p: &mut SchedClassifier = prog.try_into().map_err(kind)?;
                p.load().map_err(refused)?;
                // Only the netlink fallback needs the qdisc; there already
                // is fine.
                let _ = aya::programs::tc::qdisc_add_clsact(name);
                p.attach(name, aya::programs::TcAttachType::Ingress)
                    .map_err(|source| Error::AttachTc {
                        link: name.to_string(),
                        source,
                    })?;
                match to_peer {
                    true => "tc, to the veth peer",
                    false => "tc",
                }
            }
        };
        Ok(LinkProgram { bpf, mode })
    }
}

/// Attaches in the driver's native XDP, else the kernel's generic XDP,
/// retrying for up to 2 s while another program holds the link.
#[cfg(uvs_xdp)]
fn attach_xdp(prog: &mut aya::programs::Xdp, name: &str) -> Result<&'static str, Error> {
    use aya::programs::XdpMode;
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match prog.attach(name, XdpMode::Driver) {
            Ok(_) => return Ok("native"),
            Err(first) => match prog.attach(name, XdpMode::Skb) {
                Ok(_) => return Ok("generic"),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(_) => {
                    return Err(Error::AttachXdp {
                        link: name.to_string(),
                        source: first,
                    });
                }
            },
        }
    }
}
