//! The man pages and shell completions of `uvs` and `uvsadm`, generated
//! from their command-line definitions (`uvs generate WHAT`, as
//! `rg --generate`), so an install script or a package writes them without
//! a build script and they never drift from `--help`.

use super::args::manual as uvsadm;
use clap::Command;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use std::io::{self, Write};

/// What `uvs generate` writes to standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Artifact {
    /// uvs(8), every subcommand on the one page.
    Man,
    /// uvsadm(8).
    UvsadmMan,
    Bash,
    Zsh,
    UvsadmBash,
    UvsadmZsh,
}

impl Artifact {
    /// Where an install puts it, under the prefix's `share/`.
    pub fn path(self) -> &'static str {
        match self {
            Artifact::Man => "man/man8/uvs.8",
            Artifact::UvsadmMan => "man/man8/uvsadm.8",
            Artifact::Bash => "bash-completion/completions/uvs",
            Artifact::Zsh => "zsh/vendor-completions/_uvs",
            Artifact::UvsadmBash => "bash-completion/completions/uvsadm",
            Artifact::UvsadmZsh => "zsh/vendor-completions/_uvsadm",
        }
    }
}

/// Writes `what`; `uvs` is uvs's own command (the binary defines it).
pub fn generate(what: Artifact, uvs: Command, w: &mut dyn Write) -> io::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    let complete = |shell, mut cmd: Command, w: &mut dyn Write| {
        let name = cmd.get_name().to_string();
        clap_complete::generate(shell, &mut cmd, name, w);
        Ok(())
    };
    match what {
        Artifact::Man => uvs_page(uvs, w),
        Artifact::UvsadmMan => w.write_all(uvsadm::page(version).as_bytes()),
        Artifact::Bash => complete(Shell::Bash, uvs, w),
        Artifact::Zsh => complete(Shell::Zsh, uvs, w),
        Artifact::UvsadmBash => complete(Shell::Bash, uvsadm::command(), w),
        Artifact::UvsadmZsh => complete(Shell::Zsh, uvsadm::command(), w),
    }
}

/// A page in section 8 (system administration) with a quoted empty date:
/// an empty argument would let the next one take its place.
fn man(cmd: Command) -> Man {
    Man::new(cmd)
        .section("8")
        .date("\"\"")
        .manual("System Administration")
}

/// uvs(8): the command's sections, then one section per subcommand with
/// its synopsis, description and options (the subcommands' own pages
/// would be `man uvs-director`; one page is what `man uvs` finds).
fn uvs_page(cmd: Command, w: &mut dyn Write) -> io::Result<()> {
    let mut cmd = cmd;
    cmd.build();
    let m = man(cmd.clone()).title("UVS");
    // The title's render defines the apostrophe string; the others'
    // definitions are dropped (`body`).
    m.render_title(w)?;
    let mut text = Vec::new();
    m.render_name_section(&mut text)?;
    m.render_synopsis_section(&mut text)?;
    m.render_description_section(&mut text)?;
    m.render_options_section(&mut text)?;
    w.write_all(body(&text, false).as_bytes())?;
    let subs: Vec<&Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    // clap_mangen's list names a page per subcommand; here each has a
    // section of this page.
    let mut list = Roff::new();
    list.control("SH", ["SUBCOMMANDS"]);
    for sub in &subs {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let name = format!("uvs {}", sub.get_name());
        list.control("TP", [])
            .text([bold(name)])
            .text([roman(about)]);
    }
    w.write_all(list.to_roff().as_bytes())?;
    for sub in subs {
        let name = format!("uvs {}", sub.get_name());
        let sm = man(sub
            .clone()
            .display_name(name.clone())
            .bin_name(name.clone()));
        writeln!(w, ".SH \"{}\"", name.to_uppercase())?;
        let mut text = Vec::new();
        sm.render_synopsis_section(&mut text)?;
        sm.render_description_section(&mut text)?;
        sm.render_options_section(&mut text)?;
        w.write_all(body(&text, true).as_bytes())?;
    }
    footer(w)
}

/// Rendered sections without the apostrophe string's definition; a
/// subcommand's (`sub`) under its own section heading: its synopsis and
/// description unheaded, its options a subsection.
fn body(text: &[u8], sub: bool) -> String {
    let mut out = String::new();
    for line in String::from_utf8_lossy(text).lines() {
        let line = match line {
            l if l.starts_with(".ie \\n(.g .ds Aq") || l.starts_with(".el .ds Aq") => continue,
            ".SH SYNOPSIS" if sub => continue,
            ".SH DESCRIPTION" if sub => ".PP",
            ".SH OPTIONS" if sub => ".SS Options",
            l => l,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn footer(w: &mut dyn Write) -> io::Result<()> {
    let mut r = Roff::new();
    r.control("SH", ["FILES"]);
    for (f, what) in [
        (
            "/etc/uvs/uvs.toml",
            "the director's config file (docs/config.md)",
        ),
        ("/run/uvs/uvs.sock", "the control socket of uvsadm and uvs"),
        ("/usr/lib/systemd/system/uvs.service", "the systemd unit"),
    ] {
        r.control("TP", []).text([bold(f)]).text([roman(what)]);
    }
    r.control("SH", ["SEE ALSO"]);
    r.text([
        bold("uvsadm"),
        roman("(8), "),
        bold("systemctl"),
        roman("(1)"),
    ]);
    // Plain: the apostrophe string is defined at the top already.
    w.write_all(r.to_roff().as_bytes())
}
