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
const INTERFACES: &str =
    "# interfaces = [\"eth0\"]   # keepalived does not say; give --interface\n";

/// Writes `c.text`: the header, then the file with each service (its
/// address its own, the rest its body's); and `c.origins`, the line of
/// each service's and real server's table.
pub(super) fn render(c: &mut Converted, r: &mut Report) {
    let file = File {
        director: Default::default(),
        timeouts: None,
        marks: Vec::new(),
        services: c
            .services
            .iter()
            .map(|s| {
                let mut section = c.bodies[s.body].section.clone();
                section.address = Some(written(format!("{}:{}", s.key.addr, s.key.port)));
                section
            })
            .collect(),
    };
    let toml = match toml::to_string(&file) {
        Ok(t) => t,
        Err(e) => {
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
        Some(rest) => text.extend([DIRECTOR, INTERFACES, rest]),
        None => text.push_str(&toml),
    }
    c.text = text;
    origins(c);
}

/// The line of each table header in `c.text`, in the order the file is
/// written: a service, its sorry server, its real servers. (No value has
/// a line end in it: keepalived's words end at one.)
fn origins(c: &mut Converted) {
    let mut expected = c.services.iter().flat_map(|s| {
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
            && line == header
        {
            c.origins.push((i + 1, at.clone()));
            next = expected.next();
        }
    }
}
