//! The real-server side of `uvs probe`. Three listeners share one record
//! of what was seen per run (nonce): a packet socket on every Ethernet
//! interface ("arrived": the frame reached the NIC, whatever the kernel
//! does with it next), a UDP socket on the probe port ("delivered": the
//! kernel accepted it), and a TCP control port where the director asks
//! for a run's record. It never answers probes, so it sends nothing but
//! the reports the director asks for.

use super::{Case, Error, recognise};
use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many runs are remembered (oldest forgotten first).
const MAX_RUNS: usize = 256;
const ARPHRD_ETHER: u16 = 1;

#[derive(Default, Clone, Copy)]
struct Seen {
    arrived: u8,
    delivered: u8,
}

impl Seen {
    fn bit(c: Case) -> u8 {
        1 << (Case::ALL.iter().position(|&x| x == c).unwrap_or(0))
    }
}

#[derive(Default)]
struct Record {
    runs: HashMap<u64, Seen>,
    order: VecDeque<u64>,
}

impl Record {
    fn note(&mut self, nonce: u64, case: Case, delivered: bool) {
        if !self.runs.contains_key(&nonce) {
            if self.order.len() >= MAX_RUNS
                && let Some(old) = self.order.pop_front()
            {
                self.runs.remove(&old);
            }
            self.order.push_back(nonce);
        }
        let s = self.runs.entry(nonce).or_default();
        if delivered {
            s.delivered |= Seen::bit(case);
        } else {
            s.arrived |= Seen::bit(case);
        }
    }

    /// The JSON line answering `REPORT nonce`.
    fn report(&self, nonce: u64) -> String {
        let s = self.runs.get(&nonce).copied().unwrap_or_default();
        let names = |m: u8| -> Vec<&str> {
            Case::ALL
                .iter()
                .filter(|&&c| m & Seen::bit(c) != 0)
                .map(|c| c.name())
                .collect()
        };
        serde_json::json!({
            "nonce": format!("{nonce:016x}"),
            "arrived": names(s.arrived),
            "delivered": names(s.delivered),
        })
        .to_string()
    }
}

/// Answers one control line: `REPORT <16 hex digits>`.
fn answer(rec: &Mutex<Record>, line: &str) -> String {
    let line = line.trim_end_matches(['\r', '\n']);
    match line.split_once(' ') {
        Some(("REPORT", n)) if n.len() == 16 => match u64::from_str_radix(n, 16) {
            Ok(n) => rec.lock().map(|r| r.report(n)).unwrap_or_default(),
            Err(_) => format!("ERR bad nonce '{n}'"),
        },
        _ => {
            let shown: String = line.chars().take(40).collect();
            format!("ERR unknown request '{shown}' (expected REPORT <nonce>)")
        }
    }
}

fn serve_control(rec: &Mutex<Record>, s: TcpStream) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while {
        line.clear();
        // One request is a short line: never buffer more than 256 bytes.
        (&mut r).take(256).read_line(&mut line)? > 0
    } {
        if !line.ends_with('\n') {
            writeln!(w, "ERR request too long or unterminated")?;
            break;
        }
        writeln!(w, "{}", answer(rec, &line))?;
    }
    Ok(())
}

/// A packet socket on every interface; returns (frame length, hatype,
/// outgoing) per frame.
struct Capture(OwnedFd);

impl Capture {
    fn open() -> io::Result<Capture> {
        let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
        crate::host::sys::socket(libc::AF_PACKET, libc::SOCK_RAW, proto).map(Capture)
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, u16, bool)> {
        crate::host::sys::recv_packet(&self.0, buf)
    }
}

/// A socket bound to `port` on every address of both families: `[::]`,
/// which takes IPv4 too (as mapped addresses) unless the host has IPv6
/// off or `bindv6only` set; then `0.0.0.0`.
fn any_family<S>(port: u16, bind: impl Fn(SocketAddr) -> io::Result<S>) -> io::Result<S> {
    let any = |a: IpAddr| SocketAddr::new(a, port);
    let s = bind(any(Ipv6Addr::UNSPECIFIED.into()));
    let dual =
        std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|v| v.trim() == "0");
    match s {
        Ok(s) if dual => Ok(s),
        _ => bind(any(Ipv4Addr::UNSPECIFIED.into())),
    }
}

/// Runs the responder until killed. `port` is the control port; probes
/// are expected on UDP `port + 1`.
pub fn run(port: u16) -> Result<(), Error> {
    let probe_port = port.checked_add(1).ok_or(Error::NoProbePort(port))?;
    let rec = Arc::new(Mutex::new(Record::default()));
    let cap = Capture::open().map_err(Error::Capture)?;
    let udp = any_family(probe_port, UdpSocket::bind).map_err(|source| Error::Bind {
        port: probe_port,
        source,
    })?;
    let ctl =
        any_family(port, TcpListener::bind).map_err(|source| Error::Listen { port, source })?;
    {
        let rec = rec.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 2048];
            loop {
                match cap.recv(&mut buf) {
                    // Only frames from the wire: not our own, not what a TUN
                    // device (uvs decap) or lo hands to the stack afterwards.
                    Ok((n, ARPHRD_ETHER, false)) => {
                        if let Some((nonce, case)) = recognise(&buf[..n], probe_port)
                            && let Ok(mut r) = rec.lock()
                        {
                            r.note(nonce, case, false);
                        }
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        tracing::warn!("probe: capture failed: {e}");
                        std::process::exit(1);
                    }
                }
            }
        });
    }
    {
        let rec = rec.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            loop {
                if let Ok((n, _)) = udp.recv_from(&mut buf)
                    && let Some((nonce, case)) = super::parse_marker(&buf[..n])
                    && let Ok(mut r) = rec.lock()
                {
                    r.note(nonce, case, true);
                }
            }
        });
    }
    tracing::info!(
        "probe: responder ready: control on TCP port {port}, probes on UDP port {probe_port}"
    );
    for s in ctl.incoming() {
        match s {
            Ok(s) => {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    let _ = serve_control(&rec, s);
                });
            }
            Err(e) => tracing::warn!("probe: accept: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_reports_per_run_and_forgets_the_oldest() {
        let rec = Mutex::new(Record::default());
        rec.lock().unwrap().note(7, Case::Plain, false);
        rec.lock().unwrap().note(7, Case::Plain, true);
        rec.lock().unwrap().note(7, Case::Tun, false);
        let v: serde_json::Value =
            serde_json::from_str(&answer(&rec, "REPORT 0000000000000007\n")).unwrap();
        assert_eq!(v["arrived"], serde_json::json!(["plain", "tun"]));
        assert_eq!(v["delivered"], serde_json::json!(["plain"]));
        for n in 100..100 + MAX_RUNS as u64 {
            rec.lock().unwrap().note(n, Case::Plain, false);
        }
        let v: serde_json::Value =
            serde_json::from_str(&answer(&rec, "REPORT 0000000000000007")).unwrap();
        assert_eq!(v["arrived"], serde_json::json!([]));
        assert_eq!(rec.lock().unwrap().runs.len(), MAX_RUNS);
    }

    #[test]
    fn garbage_requests_get_errors() {
        let rec = Mutex::new(Record::default());
        assert!(answer(&rec, "REPORT zz").starts_with("ERR unknown request"));
        assert!(answer(&rec, "REPORT 000000000000000z").starts_with("ERR bad nonce"));
        assert!(answer(&rec, "\u{feff}HELLO").starts_with("ERR unknown request"));
        assert!(answer(&rec, "").starts_with("ERR unknown request"));
    }
}
