//! `uvs import-keepalived FILE`: keepalived.conf's virtual servers as a
//! uvs config file (docs/config.md). Everything uvs carries over is
//! printed; everything it does not gets a warning naming the file and
//! line, and what replaces it where there is something.

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// One statement: its words, and its block if it opens one.
#[derive(Debug, Clone)]
struct Node {
    file: PathBuf,
    line: usize,
    words: Vec<String>,
    children: Vec<Node>,
}

impl Node {
    fn key(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    fn child(&self, key: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.key() == key)
    }

    fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// A file that could not be read or parsed at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError(pub String);

/// What the import produced: the config text and the warnings.
#[derive(Debug, Default)]
pub struct Imported {
    pub config: String,
    pub warnings: Vec<String>,
}

/// Words of one line: `#` and `!` start comments, `"..."` is one word,
/// braces are words of their own.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' if cur.is_empty() => break,
            '"' => {
                for q in chars.by_ref() {
                    if q == '"' {
                        break;
                    }
                    cur.push(q);
                }
                out.push(std::mem::take(&mut cur));
            }
            '{' | '}' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Reads a file (following `include`s) into statements.
fn read(path: &Path, depth: usize, warnings: &mut Vec<String>) -> Result<Vec<Node>, ImportError> {
    if depth > 8 {
        return Err(ImportError(format!(
            "{}: includes nest too deep",
            path.display()
        )));
    }
    let text = std::fs::read(path)
        .map_err(|e| ImportError(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&text);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    // Statements as a stack of open blocks.
    let mut stack: Vec<Vec<Node>> = vec![Vec::new()];
    let mut open: Vec<Node> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut ws = words(raw).into_iter().peekable();
        while ws.peek().is_some() {
            let mut stmt: Vec<String> = Vec::new();
            let mut opens = false;
            let mut closes = false;
            for w in ws.by_ref() {
                match w.as_str() {
                    "{" => {
                        opens = true;
                        break;
                    }
                    "}" => {
                        closes = true;
                        break;
                    }
                    _ => stmt.push(w),
                }
            }
            if !stmt.is_empty() || opens {
                let node = Node {
                    file: path.to_path_buf(),
                    line,
                    words: stmt,
                    children: Vec::new(),
                };
                if opens {
                    open.push(node);
                    stack.push(Vec::new());
                } else if node.key() == "include" {
                    let Some(pat) = node.arg(1) else {
                        warnings.push(format!("{}: include without a file", node.at()));
                        continue;
                    };
                    let base = path.parent().unwrap_or(Path::new("."));
                    let full = match Path::new(pat).is_absolute() {
                        true => PathBuf::from(pat),
                        false => base.join(pat),
                    };
                    let mut found = Vec::new();
                    if let Ok(paths) = glob::glob(&full.to_string_lossy()) {
                        found.extend(paths.flatten());
                    }
                    found.sort();
                    // A pattern that matches nothing is fine, as in keepalived.
                    for f in found {
                        let inner = read(&f, depth + 1, warnings)?;
                        stack.last_mut().expect("a level").extend(inner);
                    }
                } else {
                    stack.last_mut().expect("a level").push(node);
                }
            }
            if closes {
                let (Some(mut node), Some(kids)) = (open.pop(), stack.pop()) else {
                    return Err(ImportError(format!(
                        "{}:{line}: `}}` without an open block",
                        path.display()
                    )));
                };
                node.children = kids;
                stack.last_mut().expect("a level").push(node);
            }
        }
    }
    if let Some(n) = open.last() {
        return Err(ImportError(format!(
            "{}: the block `{}` opened here is never closed",
            n.at(),
            n.words.join(" ")
        )));
    }
    Ok(stack.pop().unwrap_or_default())
}

/// A VIP and port of a virtual server (or group member).
#[derive(Debug, Clone)]
struct Vip {
    addr: String,
    port: String,
}

fn warn(w: &mut Vec<String>, n: &Node, msg: impl std::fmt::Display) {
    w.push(format!("{}: {msg}", n.at()));
}

/// Converts keepalived.conf (with its includes) to uvs's config text.
pub fn import(path: &Path) -> Result<Imported, ImportError> {
    let mut warnings = Vec::new();
    let nodes = read(path, 0, &mut warnings)?;
    let mut groups: std::collections::HashMap<String, Vec<Vip>> = Default::default();
    for n in nodes.iter().filter(|n| n.key() == "virtual_server_group") {
        let name = n.arg(1).unwrap_or_default().to_string();
        let mut members = Vec::new();
        for m in &n.children {
            match (m.arg(0), m.arg(1)) {
                (Some("fwmark"), _) => warn(
                    &mut warnings,
                    m,
                    "firewall-mark group members are not in uvs yet (a later issue adds -f); not carried over",
                ),
                (Some(a), Some(p)) if !a.contains('-') => members.push(Vip {
                    addr: a.to_string(),
                    port: p.to_string(),
                }),
                _ => warn(
                    &mut warnings,
                    m,
                    format!(
                        "group member `{}` not carried over (address ranges are not supported)",
                        m.words.join(" ")
                    ),
                ),
            }
        }
        groups.insert(name, members);
    }
    let mut out = format!(
        "# uvs config imported from {} by `uvs import-keepalived`.\n\
         # Review the warnings it printed: each names an option not carried over.\n\n\
         [director]\n# interfaces = [\"eth0\"]   # keepalived does not say; give --interface\n",
        path.display()
    );
    for n in &nodes {
        match n.key() {
            "virtual_server_group" => {}
            "virtual_server" => virtual_server(n, &groups, &mut out, &mut warnings),
            k if k.starts_with("vrrp_")
                || k == "static_ipaddress"
                || k == "static_routes"
                || k == "static_rules" =>
            {
                warn(
                    &mut warnings,
                    n,
                    format!(
                        "{k} is not carried over: uvs does not do VRRP. uvs answers ARP for its VIPs itself; \
                     for failover keep keepalived's VRRP (without virtual servers) until uvs has its \
                     backup director"
                    ),
                )
            }
            "global_defs" => warn(
                &mut warnings,
                n,
                "global_defs is not carried over (nothing in it applies to uvs)",
            ),
            other => warn(&mut warnings, n, format!("`{other}` is not carried over")),
        }
    }
    Ok(Imported {
        config: out,
        warnings,
    })
}

fn scheduler(n: &Node, w: &mut Vec<String>) -> &'static str {
    match n.child("lb_algo").and_then(|c| c.arg(1)) {
        None => "wlc",
        Some("rr") => "rr",
        Some("wrr") => "wrr",
        Some("lc") => "lc",
        Some("wlc") => "wlc",
        Some("sh") => "sh",
        Some(other) => {
            if let Some(c) = n.child("lb_algo") {
                warn(
                    w,
                    c,
                    format!(
                        "lb_algo {other} is not in uvs yet (rr, wrr, lc, wlc, sh): wlc is used"
                    ),
                );
            }
            "wlc"
        }
    }
}

fn forward(kind: Option<&str>) -> Option<&'static str> {
    match kind.map(str::to_ascii_uppercase).as_deref() {
        None | Some("DR") => Some("dr"),
        Some("NAT") => Some("nat"),
        Some("TUN") => Some("tun"),
        _ => None,
    }
}

fn virtual_server(
    n: &Node,
    groups: &std::collections::HashMap<String, Vec<Vip>>,
    out: &mut String,
    w: &mut Vec<String>,
) {
    let vips = match (n.arg(1), n.arg(2)) {
        (Some("fwmark"), _) => {
            warn(
                w,
                n,
                "firewall-mark virtual servers are not in uvs yet (a later issue adds -f); not carried over",
            );
            return;
        }
        (Some("group"), Some(g)) => match groups.get(g) {
            Some(m) => m.clone(),
            None => {
                warn(
                    w,
                    n,
                    format!("virtual_server_group {g} is not defined; not carried over"),
                );
                return;
            }
        },
        (Some(a), Some(p)) => vec![Vip {
            addr: a.to_string(),
            port: p.to_string(),
        }],
        _ => {
            warn(
                w,
                n,
                "virtual_server without an address and port; not carried over",
            );
            return;
        }
    };
    let protocol = match n
        .child("protocol")
        .and_then(|c| c.arg(1))
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("TCP") => "tcp",
        Some("UDP") => "udp",
        Some(p) => {
            warn(
                w,
                n,
                format!("protocol {p} is not in uvs (TCP, UDP); not carried over"),
            );
            return;
        }
    };
    let kind_node = n.child("lb_kind");
    let Some(fwd) = forward(kind_node.and_then(|c| c.arg(1))) else {
        warn(
            w,
            kind_node.unwrap_or(n),
            "lb_kind must be DR, NAT or TUN; not carried over",
        );
        return;
    };
    let sched = scheduler(n, w);
    let interval = match n.child("delay_loop") {
        Some(c) => number(c, w, false).unwrap_or_else(|| "60".into()),
        None => "60".into(),
    };
    // keepalived removes a failed server unless inhibit_on_failure says
    // to keep it at weight 0 (uvs's quiesce).
    let inhibit = n.child("inhibit_on_failure").is_some();
    let mut body = String::new();
    let _ = writeln!(body, "scheduler = \"{sched}\"");
    let _ = writeln!(
        body,
        "on_failure = \"{}\"",
        if inhibit { "quiesce" } else { "remove" }
    );
    if let Some(q) = n.child("quorum").and_then(|c| number(c, w, true)) {
        let _ = writeln!(body, "quorum = {q}");
    }
    for k in ["quorum_up", "quorum_down"] {
        if let Some(c) = n.child(k) {
            let cmd = c.words[1..].join(" ");
            let _ = writeln!(body, "{k} = {}", toml_str(&cmd));
        }
    }
    for c in &n.children {
        match c.key() {
            "delay_loop" | "lb_algo" | "lb_kind" | "protocol" | "inhibit_on_failure" | "quorum"
            | "quorum_up" | "quorum_down" | "real_server" | "sorry_server" => {}
            "persistence_timeout" | "persistence_granularity" | "persistence_engine" => warn(
                w,
                c,
                format!(
                    "{} is not carried over: persistence is not in uvs yet (a later issue adds it)",
                    c.key()
                ),
            ),
            other => warn(
                w,
                c,
                format!("virtual_server option `{other}` is not carried over"),
            ),
        }
    }
    if let Some(s) = n.child("sorry_server") {
        match (s.arg(1), s.arg(2)) {
            (Some(a), p) => {
                let _ = writeln!(body, "\n  [service.sorry_server]");
                let _ = writeln!(body, "  address = {}", toml_str(&addr_port(a, p, fwd)));
                let _ = writeln!(body, "  forward = \"{fwd}\"");
            }
            _ => warn(w, s, "sorry_server without an address; not carried over"),
        }
    }
    for r in n.children.iter().filter(|c| c.key() == "real_server") {
        let (Some(a), p) = (r.arg(1), r.arg(2)) else {
            warn(w, r, "real_server without an address; not carried over");
            continue;
        };
        let _ = writeln!(body, "\n  [[service.real_server]]");
        let _ = writeln!(body, "  address = {}", toml_str(&addr_port(a, p, fwd)));
        let _ = writeln!(body, "  forward = \"{fwd}\"");
        if let Some(wt) = r.child("weight").and_then(|c| number(c, w, true)) {
            let _ = writeln!(body, "  weight = {wt}");
        }
        let mut checks = 0;
        for c in &r.children {
            match c.key() {
                "weight" => {}
                "inhibit_on_failure" => {
                    if !inhibit {
                        warn(
                            w,
                            c,
                            "inhibit_on_failure on one real server: uvs sets it per service; not carried over",
                        );
                    }
                }
                "TCP_CHECK" | "HTTP_GET" | "UDP_CHECK" | "DNS_CHECK" | "MISC_CHECK" | "SSL_GET" => {
                    checks += 1;
                    if checks > 1 {
                        warn(
                            w,
                            c,
                            "a second check on one real server: uvs runs one; not carried over",
                        );
                        continue;
                    }
                    check(c, &interval, &mut body, w);
                }
                other => warn(
                    w,
                    c,
                    format!("real_server option `{other}` is not carried over"),
                ),
            }
        }
    }
    for v in vips {
        let _ = writeln!(out, "\n[[service]]");
        let _ = writeln!(out, "protocol = \"{protocol}\"");
        let _ = writeln!(
            out,
            "address = {}",
            toml_str(&format!("{}:{}", v.addr, v.port))
        );
        out.push_str(&body);
    }
}

/// An option's number as TOML writes it (`whole`: an integer), or a
/// warning and `None`: what keepalived would refuse is not copied into a
/// file it would break.
fn number(n: &Node, w: &mut Vec<String>, whole: bool) -> Option<String> {
    let v = n.arg(1).unwrap_or("");
    let ok = match whole {
        true => v.parse::<u32>().ok().map(|x| x.to_string()),
        false => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0)
            .map(|x| x.to_string()),
    };
    if ok.is_none() {
        warn(
            w,
            n,
            format!("{} `{v}` is not a number; not carried over", n.key()),
        );
    }
    ok
}

/// `ADDR` or `ADDR:PORT`: DR and TUN use the service's port anyway.
fn addr_port(a: &str, p: Option<&str>, fwd: &str) -> String {
    match (p, fwd) {
        (Some(p), "nat") => format!("{a}:{p}"),
        _ => a.to_string(),
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn check(c: &Node, interval: &str, out: &mut String, w: &mut Vec<String>) {
    let kind = match c.key() {
        "TCP_CHECK" => "tcp",
        "HTTP_GET" => "http",
        "UDP_CHECK" => "udp",
        "DNS_CHECK" => "dns",
        "MISC_CHECK" => "exec",
        _ => {
            warn(
                w,
                c,
                "SSL_GET (HTTPS) checks are not in uvs: not carried over, so this real server is not \
                 checked; use a TCP or exec check",
            );
            return;
        }
    };
    // Each key once (a repeated keepalived option: the last one wins).
    let mut keys: Vec<(&str, String)> = vec![
        ("type", format!("\"{kind}\"")),
        ("interval", interval.to_string()),
        ("timeout", "5".into()),
    ];
    let mut set = |k: &'static str, v: String| match keys.iter_mut().find(|(x, _)| *x == k) {
        Some(e) => e.1 = v,
        None => keys.push((k, v)),
    };
    let mut dynamic = false;
    for o in &c.children {
        match (o.key(), o.arg(1)) {
            ("connect_timeout" | "misc_timeout", Some(_)) => {
                if let Some(t) = number(o, w, false) {
                    set("timeout", t);
                }
            }
            ("connect_port", Some(_)) => {
                if let Some(p) = number(o, w, true) {
                    set("port", p);
                }
            }
            ("retry" | "nb_get_retry", Some(r)) => {
                set("fall", r.parse::<u32>().unwrap_or(1).max(1).to_string());
            }
            ("delay_before_retry", _) => warn(
                w,
                o,
                "delay_before_retry is not carried over: uvs checks again at the interval",
            ),
            ("misc_path", Some(_)) => {
                set("command", toml_str(&o.words[1..].join(" ")));
            }
            ("misc_dynamic", _) => dynamic = true,
            ("name", Some(n)) if kind == "dns" => {
                set("name", toml_str(n));
            }
            ("type", Some(t)) if kind == "dns" => {
                if !t.eq_ignore_ascii_case("A") {
                    warn(w, o, format!("DNS_CHECK type {t}: uvs queries type A"));
                }
            }
            ("payload", Some(p)) if kind == "udp" => match hex(p) {
                Some(s) => {
                    set("payload", toml_str(&s));
                }
                None => warn(
                    w,
                    o,
                    "UDP_CHECK payload is not printable text; not carried over",
                ),
            },
            ("require_reply", Some(p)) if kind == "udp" => match hex(p) {
                Some(s) => {
                    set("expect", toml_str(&s));
                }
                None => warn(
                    w,
                    o,
                    "UDP_CHECK require_reply is not printable text; not carried over",
                ),
            },
            ("url", _) if kind == "http" => {}
            (k, _) => warn(
                w,
                o,
                format!("{} option `{k}` is not carried over", c.key()),
            ),
        }
    }
    let _ = writeln!(out, "    [service.real_server.check]");
    for (k, v) in &keys {
        let _ = writeln!(out, "    {k} = {v}");
    }
    if kind == "exec" && !dynamic {
        warn(
            w,
            c,
            "MISC_CHECK without misc_dynamic: uvs always applies misc_dynamic's rule (exit 2-255 is up \
             with weight code - 2, not down); make the script exit 1 for down",
        );
    }
    if kind == "http" {
        let urls: Vec<&Node> = c.children.iter().filter(|u| u.key() == "url").collect();
        if let Some(u) = urls.first() {
            if let Some(p) = u.child("path").and_then(|p| p.arg(1)) {
                let _ = writeln!(out, "    path = {}", toml_str(p));
            }
            if let Some(s) = u.child("status_code").and_then(|p| p.arg(1)) {
                let _ = writeln!(out, "    status = [{}]", toml_str(s));
            }
            if let Some(d) = u.child("digest").and_then(|p| p.arg(1)) {
                let _ = writeln!(out, "    digest = {}", toml_str(d));
            }
            for o in &u.children {
                if !matches!(o.key(), "path" | "status_code" | "digest") {
                    warn(
                        w,
                        o,
                        format!(
                            "url option `{}` is not carried over (uvs checks the status only)",
                            o.key()
                        ),
                    );
                }
            }
        }
        for u in urls.iter().skip(1) {
            warn(w, u, "a second url: uvs checks one; not carried over");
        }
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
    fn words_handle_comments_quotes_and_braces() {
        assert_eq!(words("a b{ # c"), ["a", "b", "{"]);
        assert_eq!(
            words("misc_path \"/bin/x 1\" }"),
            ["misc_path", "/bin/x 1", "}"]
        );
        assert_eq!(words("! comment"), Vec::<String>::new());
        assert_eq!(hex("50494e47"), Some("PING".into()));
        assert_eq!(hex("00ff"), None);
    }

    #[test]
    fn unbalanced_blocks_are_errors_naming_the_place() {
        let d = std::env::temp_dir().join(format!("uvs-ka-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("k.conf");
        std::fs::write(&f, "virtual_server 1.2.3.4 80 {\n lb_algo rr\n").unwrap();
        let e = import(&f).unwrap_err();
        assert!(
            e.0.contains("k.conf:1") && e.0.contains("never closed"),
            "{e:?}"
        );
        std::fs::write(&f, "}\n").unwrap();
        assert!(import(&f).unwrap_err().0.contains("without an open block"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
