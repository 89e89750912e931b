//! keepalived's `retry` and `delay_before_retry`: a failed check of a
//! server that is up is tried again, `retry_delay` apart, up to `retry`
//! times, and fails only if every try fails. A server that is down is
//! not retried (one pass brings it up, at the next interval). So a
//! keepalived checker's detection time, the first failure plus `retry`
//! delays, is uvs's too.

use super::{CheckError, CheckSpec, Passed, run_via, via_vip::Route};
use std::net::SocketAddr;

/// One check of the server at `to` with its retries (`up`: the server
/// is up now; `via`: through the VIP); the last try's verdict.
pub async fn run_retrying(
    spec: &CheckSpec,
    to: SocketAddr,
    via: Option<&Route>,
    up: bool,
) -> Result<Passed, CheckError> {
    let mut result = run_via(spec, to, via).await;
    let retries = if up { spec.retry } else { 0 };
    for _ in 0..retries {
        if result.is_ok() {
            break;
        }
        tokio::time::sleep(spec.retry_delay).await;
        result = run_via(spec, to, via).await;
    }
    result
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::control::check::CheckKind;
    use std::time::{Duration, Instant};

    /// An exec check of `exit 1` with `retry` retries `delay` seconds apart.
    pub(crate) fn spec(retry: u32, delay: f64) -> CheckSpec {
        CheckSpec {
            kind: CheckKind::Exec {
                command: "exit 1".into(),
                dynamic: false,
            },
            port: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            rise: 1,
            fall: 1,
            warmup: Duration::ZERO,
            retry,
            retry_delay: Duration::from_secs_f64(delay),
            via_vip: false,
        }
    }

    fn timed(spec: &CheckSpec, up: bool) -> (Result<Passed, CheckError>, Duration) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let to = SocketAddr::from(([198, 18, 0, 11], 80));
        let t = Instant::now();
        let r = rt.block_on(run_retrying(spec, to, None, up));
        (r, t.elapsed())
    }

    /// Detection time: an up server that keeps failing is judged after
    /// its first try and `retry` more, `retry_delay` apart (3 x 0.2 s);
    /// a down one after one try.
    #[test]
    fn retries_set_the_detection_time_of_an_up_server_only() {
        let (r, took) = timed(&spec(3, 0.2), true);
        assert!(r.is_err());
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_millis(1500),
            "{took:?}"
        );
        let (r, took) = timed(&spec(3, 0.2), false);
        assert!(r.is_err());
        assert!(took < Duration::from_millis(400), "{took:?}");
        let (_, took) = timed(&spec(0, 0.2), true);
        assert!(took < Duration::from_millis(400), "{took:?}");
    }

    /// A retry that passes makes the check pass: the server stays up.
    #[test]
    fn a_retry_that_passes_is_a_pass() {
        let flag = std::env::temp_dir().join(format!("uvs-retry-{}", std::process::id()));
        let _ = std::fs::remove_file(&flag);
        let mut s = spec(2, 0.05);
        // Fails the first time (and leaves the flag), passes after.
        s.kind = CheckKind::Exec {
            command: format!("test -e {0} || {{ touch {0}; exit 1; }}", flag.display()),
            dynamic: false,
        };
        let (r, took) = timed(&s, true);
        let _ = std::fs::remove_file(&flag);
        assert_eq!(r.ok(), Some(None));
        assert!(took >= Duration::from_millis(50), "{took:?}");
    }
}
