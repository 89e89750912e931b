//! What health checks cost the control plane: N real servers (default
//! 1,000) checked every second with TCP connect checks, run on one
//! current-thread runtime as in the daemon, against a listener on
//! loopback. Prints the checking thread's CPU time per second (the
//! listener's own cost is not counted). Asserts nothing.
//!
//! Run: cargo bench --bench checks
//!      UVS_BENCH_CHECKS=5000 cargo bench --bench checks

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::time::{Duration, Instant};
use uvs::control::check::{self, CheckKind, CheckSpec, Counter};

fn thread_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    let (full, n) = uvs::rig::bench_size("UVS_BENCH_CHECKS", 1000usize, 50);
    let secs = if full { 10 } else { 2 };
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    let spec = CheckSpec {
        kind: CheckKind::Tcp,
        port: None,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        rise: 1,
        fall: 3,
        warmup: Duration::from_secs(1),
        retry: 0,
        retry_delay: Duration::from_secs(1),
        via_vip: false,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (checks, cpu, failed) = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..n {
            let spec = spec.clone();
            tasks.push(tokio::spawn(async move {
                // The daemon's warm-up spreads the checks over the interval.
                let jitter = Duration::from_micros((i as u64 * 1_000_000 / n as u64) % 1_000_000);
                tokio::time::sleep(jitter).await;
                let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
                let mut c = Counter::new(true);
                let mut tick = tokio::time::interval(spec.interval);
                let (mut done, mut bad) = (0u64, 0u64);
                let end = Instant::now() + Duration::from_secs(secs);
                while Instant::now() < end {
                    tick.tick().await;
                    let r = check::run_once(&spec, to).await;
                    bad += u64::from(r.is_err());
                    c.record(r.is_ok(), spec.rise, spec.fall);
                    done += 1;
                }
                (done, bad)
            }));
        }
        let cpu0 = thread_cpu();
        let (mut done, mut bad) = (0, 0);
        for t in tasks {
            let (d, b) = t.await.unwrap();
            done += d;
            bad += b;
        }
        (done, thread_cpu() - cpu0, bad)
    });
    let per_sec = cpu.as_secs_f64() / secs as f64;
    println!(
        "{n} real servers, TCP checks every 1 s for {secs} s: {checks} checks ({failed} failed), \
         control-plane thread CPU {:.1}% of one core, {:.1} µs per check",
        per_sec * 100.0,
        cpu.as_secs_f64() * 1e6 / checks.max(1) as f64
    );
}
