//! The import's output: the converted services as the config's own file
//! types ([`crate::config`]) written by the `toml` crate, so whatever the
//! input, every key is written once and every value quoted as TOML wants
//! (hand-written text had duplicate keys and unquoted values). TOML
//! serialization carries no comments, so the header that names the
//! source and the note on the director's interfaces are put around it.

use super::converted::{Converted, written};
use super::report::Report;
use crate::config::File;

/// The table every output has, and the note in it: keepalived.conf does
/// not say which interfaces the director serves.
const DIRECTOR: &str = "[director]\n";
pub(super) const INTERFACES: &str =
    "# interfaces = [\"eth0\"]   # keepalived does not say; give --interface\n";

/// Writes `c.text`: the header, then the file with each service (its
/// address its own, the rest its body's); and `c.origins`, the line of
/// each service's and real server's table.
pub(super) fn render(c: &mut Converted, r: &mut Report) {
    let file = |marked: bool| File {
        director: Default::default(),
        timeouts: None,
        marks: Vec::new(),
        services: c
            .services
            .iter()
            .filter(|s| s.key.fwmark().is_some() == marked)
            .map(|s| {
                let mut section = c.bodies[s.body].section.clone();
                match s.key.fwmark() {
                    Some(m) => {
                        (section.protocol, section.address) = (None, None);
                        section.fwmark = Some(written(m));
                    }
                    None => {
                        let a = std::net::SocketAddr::new(s.key.addr, s.key.port).to_string();
                        section.address = Some(written(a));
                    }
                }
                section
            })
            .collect(),
    };
    let (toml, marked) = match (toml::to_string(&file(false)), toml::to_string(&file(true))) {
        (Ok(t), Ok(m)) => (t, m),
        (Err(e), _) | (_, Err(e)) => {
            r.error(&c.file, format!("the config cannot be written: {e}"));
            return;
        }
    };
    let mut text = format!(
        "# uvs config imported from {} by `uvs import-keepalived`.\n\
         # Review the warnings it printed: each names an option not carried over.\n\n",
        c.file.file.display()
    );
    match toml.strip_prefix(DIRECTOR) {
        Some(rest) => {
            let table = c.director.as_deref().unwrap_or(INTERFACES);
            text.extend([DIRECTOR, table, "\n", rest.trim_start_matches('\n')]);
        }
        None => text.push_str(&toml),
    }
    // Mark services last, commented out until their marks are defined:
    // the output loads as it is.
    let marks: Vec<u32> = c.services.iter().filter_map(|s| s.key.fwmark()).collect();
    if let Some(m) = marks.first() {
        text.push_str(&mark_todo(*m, &marks));
        let skip = marked.find("[[service]]").unwrap_or(0);
        for line in marked[skip..].lines() {
            text.extend([SERVICE_PREFIX, line, "\n"]);
        }
    }
    c.text = text;
    origins(c);
}

/// The prefix of an imported mark service's lines: commented out.
pub(super) const SERVICE_PREFIX: &str = "#: ";

/// What the imported mark services need: their marks, from the iptables
/// rules that set them (keepalived.conf does not say).
fn mark_todo(m: u32, all: &[u32]) -> String {
    let list: Vec<String> = all.iter().map(u32::to_string).collect();
    format!(
        "\n# TODO firewall marks {}: keepalived's `virtual_server fwmark N` serves what an\n\
         # iptables rule marks; uvs sees frames before iptables, so define each mark\n\
         # here from its rule (docs/config.md, Firewall marks), then uncomment its\n\
         # service (the `#: ` lines below). For\n\
         #   iptables -t mangle -A PREROUTING -d VIP -p tcp -m multiport --dports 80,443 -j MARK --set-mark {m}\n\
         # write\n\
         # [[mark]]\n# id = {m}\n# protocol = \"tcp\"\n# vip = \"VIP\"\n# ports = \"80,443\"\n\n",
        list.join(", ")
    )
}

/// A stand-in definition of each mark the imported services use, for
/// checking the output as the director would once the TODOs are done:
/// an address of TEST-NET-1 per mark, every port.
pub(super) fn stand_in_marks(c: &Converted) -> String {
    let marks = c.services.iter().filter_map(|s| s.key.fwmark());
    marks
        .enumerate()
        .map(|(i, m)| {
            let (hi, lo) = ((i / 250) as u8, (i % 250) as u8 + 1);
            format!("\n[[mark]]\nid = {m}\nvip = \"192.0.{}.{lo}\"\n", 2 + hi)
        })
        .collect()
}

/// The line of each table header in `c.text`, in the order the file is
/// written: a service, its sorry server, its real servers. (No value has
/// a line end in it: keepalived's words end at one.)
fn origins(c: &mut Converted) {
    // The order written: mark services last.
    let order = c.services.iter().filter(|s| s.key.fwmark().is_none());
    let marked = c.services.iter().filter(|s| s.key.fwmark().is_some());
    let mut expected = order.chain(marked).flat_map(|s| {
        let b = &c.bodies[s.body];
        let servers = b.sorry.iter().map(|x| ("[service.sorry_server]", &x.at));
        let reals = b
            .real_servers
            .iter()
            .map(|x| ("[[service.real_server]]", &x.at));
        std::iter::once(("[[service]]", &s.at))
            .chain(servers)
            .chain(reals)
    });
    let mut next = expected.next();
    for (i, line) in c.text.lines().enumerate() {
        if let Some((header, at)) = next
            && line.strip_prefix(SERVICE_PREFIX).unwrap_or(line) == header
        {
            c.origins.push((i + 1, at.clone()));
            next = expected.next();
        }
    }
}
