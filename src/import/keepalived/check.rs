//! A real server's check: keepalived's checker block as the config's
//! `[service.real_server.check]` table. TCP_CHECK, HTTP_GET (its first
//! url), UDP_CHECK, DNS_CHECK and MISC_CHECK carry over; an option of
//! theirs that uvs does not have gets a warning, and so does SSL_GET,
//! which uvs cannot check. Each option sets one field, so a repeated one
//! is written once: the last wins, as in keepalived.

use super::converted::written;
use super::read::Node;
use super::report::{Report, shown};
use super::statement::{block, extra, no_block, option, seconds, value, whole};
use crate::config::CheckSection;

/// What a checker takes from its virtual and real server blocks, where
/// keepalived lets them give it: `delay_loop`, `retry` (or the older
/// `nb_get_retry`) and `delay_before_retry`.
#[derive(Debug, Clone)]
pub(super) struct Inherited {
    pub interval: toml::Value,
    pub retry: Option<u64>,
    pub delay_before_retry: Option<toml::Value>,
    /// The virtual server's VIPs: a `connect_ip` among them is a check
    /// through the VIP (`via_vip`).
    pub vips: Vec<std::net::IpAddr>,
}

impl Inherited {
    /// `n`'s own `retry` and `delay_before_retry` over these (a virtual
    /// server's over keepalived's defaults, a real server's over its
    /// virtual server's).
    pub(super) fn under(&self, n: &Node, w: &mut Report) -> Inherited {
        let mut out = self.clone();
        for o in &n.children {
            match o.key() {
                "retry" | "nb_get_retry" => {
                    if let Some(r) = whole(o, 0, u32::MAX.into(), w) {
                        out.retry = Some(r);
                    }
                }
                "delay_before_retry" => {
                    if let Some(d) = seconds(o, w) {
                        out.delay_before_retry = Some(d);
                    }
                }
                _ => {}
            }
        }
        out
    }
}

/// Whether `k` is an option [`Inherited::under`] reads.
pub(super) fn inherited(k: &str) -> bool {
    matches!(k, "retry" | "nb_get_retry" | "delay_before_retry")
}

/// A check's table, or `None` (with a warning) when there is none to
/// write. keepalived's detection follows: a server is down after its
/// check and `retry` retries `delay_before_retry` apart failed (so
/// `fall = 1`), up again after one pass (`rise = 1`).
pub(super) fn check(c: &Node, from: &Inherited, w: &mut Report) -> Option<CheckSection> {
    let interval = &from.interval;
    let kind = match c.key() {
        "TCP_CHECK" => "tcp",
        "HTTP_GET" => "http",
        "UDP_CHECK" => "udp",
        "DNS_CHECK" => "dns",
        "MISC_CHECK" => "exec",
        _ => {
            w.warn(
                &c.at,
                "SSL_GET (HTTPS) checks are not in uvs: not carried over, so this real server is not \
                 checked; use a TCP or exec check",
            );
            return None;
        }
    };
    let mut out = CheckSection {
        kind: written(kind.to_string()),
        interval: Some(written(interval.clone())),
        // keepalived's connect_timeout default.
        timeout: Some(written(toml::Value::Integer(5))),
        warmup: None,
        rise: None,
        fall: None,
        port: None,
        path: None,
        status: None,
        body_contains: None,
        digest: None,
        host: None,
        payload: None,
        expect: None,
        name: None,
        command: None,
        dynamic: None,
        retry: None,
        retry_delay: None,
        via_vip: None,
    };
    let mut dynamic = false;
    let own = from.under(c, w);
    for o in &c.children {
        if o.key() == "url" {
            continue;
        }
        if !no_block(o, w) {
            continue;
        }
        match (o.key(), o.arg(1)) {
            ("connect_timeout" | "misc_timeout", Some(_)) => {
                if let Some(t) = seconds(o, w) {
                    out.timeout = Some(written(t));
                }
            }
            ("connect_port", Some(_)) => {
                if let Some(p) = whole(o, 1, 65535, w) {
                    out.port = Some(p as u16);
                }
            }
            ("connect_ip", Some(_)) if kind == "tcp" => match value(o, w).map(str::parse) {
                Some(Ok(a)) if from.vips.contains(&a) => out.via_vip = Some(written(true)),
                Some(_) => w.warn(
                    &o.at,
                    "connect_ip other than the VIP is not carried over: uvs checks the real \
                     server's own address, or the VIP through the data path (`via_vip`)",
                ),
                None => {}
            },
            // Read by `from.under`.
            ("retry" | "nb_get_retry" | "delay_before_retry", Some(_)) => {}
            ("misc_path", Some(_)) => out.command = Some(o.words[1..].join(" ")),
            ("misc_dynamic", _) => {
                extra(o, 1, w);
                dynamic = true;
            }
            ("name", Some(_)) if kind == "dns" => {
                if let Some(n) = value(o, w) {
                    out.name = Some(n.to_string());
                }
            }
            ("type", Some(_)) if kind == "dns" => {
                if let Some(t) = value(o, w)
                    && !t.eq_ignore_ascii_case("A")
                {
                    w.warn(
                        &o.at,
                        format!("DNS_CHECK type {}: uvs queries type A", shown(t)),
                    );
                }
            }
            ("payload", Some(_)) if kind == "udp" => match value(o, w).and_then(hex) {
                Some(s) => out.payload = Some(s),
                None => w.warn(
                    &o.at,
                    "UDP_CHECK payload is not printable text; not carried over",
                ),
            },
            ("require_reply", Some(_)) if kind == "udp" => match value(o, w).and_then(hex) {
                Some(s) => out.expect = Some(s),
                None => w.warn(
                    &o.at,
                    "UDP_CHECK require_reply is not printable text; not carried over",
                ),
            },
            (
                "connect_timeout" | "misc_timeout" | "connect_port" | "connect_ip" | "retry"
                | "nb_get_retry" | "delay_before_retry" | "misc_path" | "name" | "type" | "payload"
                | "require_reply",
                None,
            ) => w.error(&o.at, format!("{} needs a value", option(o))),
            _ => w.warn(
                &o.at,
                format!("{} option {} is not carried over", c.key(), option(o)),
            ),
        }
    }
    if kind == "exec" && out.command.is_none() {
        w.warn(
            &c.at,
            "MISC_CHECK without misc_path: keepalived skips the check, and so does the import",
        );
        return None;
    }
    if kind == "dns" && out.name.is_none() {
        w.warn(
            &c.at,
            "DNS_CHECK without name: keepalived queries the root, which uvs cannot; the check is \
             not carried over (give `name`)",
        );
        return None;
    }
    if dynamic {
        out.dynamic = Some(true);
    }
    retries(&mut out, kind, &own);
    let urls: Vec<&Node> = c.children.iter().filter(|u| u.key() == "url").collect();
    if kind != "http" {
        for u in &urls {
            w.warn(
                &u.at,
                format!("{} option `url` is not carried over", c.key()),
            );
        }
        return Some(out);
    }
    for (i, u) in urls.iter().enumerate() {
        if !block(u, w) {
            continue;
        }
        if i > 0 {
            w.warn(&u.at, "a second url: uvs checks one; not carried over");
            continue;
        }
        url(u, &mut out, w);
    }
    Some(out)
}

/// keepalived's detection: `fall = 1`, `rise = 1`, and its retries with
/// their delay (keepalived's defaults where the blocks give none: one
/// retry, none for MISC_CHECK and three for DNS_CHECK; a second apart,
/// three for HTTP_GET, the delay_loop for DNS_CHECK).
fn retries(out: &mut CheckSection, kind: &str, from: &Inherited) {
    out.fall = Some(written(1));
    out.rise = Some(written(1));
    let retry = from.retry.unwrap_or(match kind {
        "exec" => 0,
        "dns" => 3,
        _ => 1,
    });
    if retry == 0 {
        return;
    }
    let delay = from.delay_before_retry.clone().unwrap_or(match kind {
        "dns" => from.interval.clone(),
        "http" => toml::Value::Integer(3),
        _ => toml::Value::Integer(1),
    });
    out.retry = Some(written(retry.min(u32::MAX.into()) as u32));
    out.retry_delay = Some(written(delay));
}

/// An HTTP_GET's first url: its path (the last one given wins, as in
/// keepalived), its status codes (every `status_code`'s, as keepalived
/// adds them up) and its digest (one: keepalived reports a second).
fn url(u: &Node, out: &mut CheckSection, w: &mut Report) {
    extra(u, 1, w);
    for o in &u.children {
        if !no_block(o, w) {
            continue;
        }
        match o.key() {
            "path" => {
                if let Some(v) = value(o, w) {
                    out.path = Some(v.to_string());
                }
            }
            "digest" => match (value(o, w), &out.digest) {
                (Some(_), Some(_)) => w.error(
                    &o.at,
                    "a second `digest` in one url: keepalived reports it as a duplicate; give one",
                ),
                (Some(v), None) => out.digest = Some(v.to_string()),
                (None, _) => {}
            },
            "status_code" => {
                // Every code and range, as keepalived takes them; a bad
                // one is left out, as keepalived leaves it out.
                let mut codes = Vec::new();
                for s in &o.words[1..] {
                    match status(s) {
                        true => codes.push(written(toml::Value::String(s.clone()))),
                        false => w.warn(
                            &o.at,
                            format!(
                                "status_code {} is not a code or range from 100 to 599; left out, \
                                 as keepalived leaves it out",
                                shown(s)
                            ),
                        ),
                    }
                }
                match codes.is_empty() {
                    true if o.words.len() == 1 => w.error(&o.at, "`status_code` needs a value"),
                    true => {}
                    false => out.status.get_or_insert_default().extend(codes),
                }
            }
            _ => w.warn(
                &o.at,
                format!(
                    "url option {} is not carried over (uvs checks the status only)",
                    option(o)
                ),
            ),
        }
    }
}

/// A status code or range as keepalived's HTTP_GET takes it (100-599).
fn status(s: &str) -> bool {
    let code = |x: &str| x.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
    match s.split_once('-') {
        Some((a, b)) => matches!((code(a), code(b)), (Some(a), Some(b)) if a <= b),
        None => code(s).is_some(),
    }
}

/// keepalived's UDP_CHECK payloads are hex; uvs's are text.
fn hex(h: &str) -> Option<String> {
    let h = h.trim_start_matches("0x");
    if !h.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect();
    let s = String::from_utf8(bytes?).ok()?;
    s.chars().all(|c| !c.is_control()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_payloads_and_status_codes() {
        assert_eq!(hex("50494e47"), Some("PING".into()));
        assert_eq!(hex("00ff"), None);
        assert!(status("200") && status("200-299") && status("599"));
        assert!(!status("99") && !status("300-200") && !status("2xx") && !status("600"));
    }
}
