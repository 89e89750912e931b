//! uvsadm's man page and its shell completions, from the same tables
//! that parse its command line and print `uvsadm -h`: every command and
//! option of ipvsadm that the tables hold is on the page, with what uvs
//! does with it, and what uvs adds (`--socket`) is marked as uvs's own.

use super::table::{Arg, COMMANDS, EXTRA_FLAGS, MAN_ONLY, OPTIONS, SYNOPSIS};
use crate::admin::client::DEFAULT_SOCKET;
use clap::{ArgAction, Command, ValueHint};
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

/// A help line's argument and text (`"N  the weight"`: `N`, `the weight`),
/// the man-only mark dropped.
fn split(help: &str) -> (Option<&str>, &str) {
    let h = help.strip_prefix(MAN_ONLY).unwrap_or(help);
    match h.split_once("  ") {
        Some((a, t)) => (Some(a), t.trim_start()),
        None => (None, h),
    }
}

/// One `-s, --long ARG` tag of a definition list (`short` `'\0'`: none).
fn spelling(r: &mut Vec<Inline>, (long, short, kind): (&str, char, Arg), arg: Option<&str>) {
    if !r.is_empty() {
        r.push(roman(", "));
    }
    if short != '\0' {
        r.push(bold(format!("-{short}")));
        r.push(roman(", "));
    }
    r.push(bold(format!("--{long}")));
    match (kind, arg) {
        (Arg::None, _) | (_, None) => {}
        (Arg::Required, Some(a)) => r.extend([roman(" "), italic(a)]),
        (Arg::Optional, Some(a)) => {
            let a = a.trim_matches(['[', ']']);
            r.extend([roman(" ["), italic(a), roman("]")]);
        }
    }
}

/// A `.TP` entry: the tag, then the text.
fn entry(page: &mut Roff, tag: Vec<Inline>, text: &str) {
    page.control("TP", []).text(tag).text([roman(text)]);
}

/// The commands and options that the tables give, each with its text.
fn definitions(page: &mut Roff) {
    page.control("SH", ["COMMANDS"]);
    page.text([roman(
        "The first option must be a command; short options bundle (-Ln, -At ADDR) as in ipvsadm.",
    )]);
    for (i, c) in COMMANDS.iter().enumerate() {
        let (arg, text) = split(c.help);
        // `-l` shares `--list` with `-L`: only its letter is new.
        let dup = COMMANDS[..i].iter().any(|e| e.long == c.long);
        let mut tag = Vec::new();
        if dup {
            tag.push(bold(format!("-{}", c.short)));
        } else {
            spelling(&mut tag, (c.long, c.short, c.arg), arg);
        }
        entry(page, tag, text);
    }
    page.control("SH", ["OPTIONS"]);
    for d in OPTIONS {
        let (arg, text) = split(d.help);
        let mut tag = Vec::new();
        // With several spellings the text says what each takes.
        let one = d.flags.len() == 1;
        for f in d.flags {
            spelling(&mut tag, (f.long, f.short, f.arg), arg.filter(|_| one));
        }
        let text = match (one, arg) {
            (false, Some(a)) => format!("{a}: {text}"),
            _ => text.to_string(),
        };
        entry(page, tag, &text);
    }
    for (f, help) in EXTRA_FLAGS {
        let (arg, text) = split(help);
        let mut tag = Vec::new();
        spelling(&mut tag, (f.long, f.short, f.arg), arg);
        entry(page, tag, text);
    }
}

/// The ipvsadm options that uvs refuses, by their help text.
fn refused() -> Vec<String> {
    let c = COMMANDS.iter().map(|c| (c.long, c.help));
    let o = OPTIONS
        .iter()
        .flat_map(|d| d.flags.iter().map(|f| (f.long, d.help)));
    c.chain(o)
        .filter(|(_, h)| h.contains("refused"))
        .map(|(l, _)| format!("--{l}"))
        .collect()
}

/// uvsadm(8) in roff.
pub fn page(version: &str) -> String {
    let mut page = Roff::new();
    let source = format!("uvs {version}");
    // An empty argument must be quoted, or the next one takes its place.
    page.control(
        "TH",
        ["UVSADM", "8", "\"\"", &source, "System Administration"],
    );
    page.control("SH", ["NAME"]);
    page.text([roman(
        "uvsadm - ipvsadm's command line for the uvs director",
    )]);
    page.control("SH", ["SYNOPSIS"]);
    for form in SYNOPSIS {
        page.text([bold("uvsadm"), roman(format!(" {form}"))]);
        page.control("br", []);
    }
    page.control("SH", ["DESCRIPTION"]);
    page.text([
        bold("uvsadm"),
        roman(
            " parses ipvsadm 1.31's command line with ipvsadm's rules and error messages and prints \
             ipvsadm's listings, for the userspace director ",
        ),
        bold("uvs"),
        roman("(8), which it reaches over a Unix socket. Without arguments it lists the table, as "),
        bold("-L"),
        roman(
            ". The commands and options below are ipvsadm's; the few that uvs does not do are \
             accepted by the parser and refused with a message naming them.",
        ),
    ]);
    definitions(&mut page);
    page.control("SH", ["UVS ADDITIONS"]);
    page.text([roman("Not in ipvsadm; uvs's own:")]);
    let mut tag = Vec::new();
    spelling(&mut tag, ("socket", '\0', Arg::Required), Some("PATH"));
    let text = format!(
        "the director's control socket (anywhere on the line; default {DEFAULT_SOCKET}, or UVS_SOCKET)"
    );
    entry(&mut page, tag, &text);
    page.control("SH", ["NEXT TO IPVSADM"]);
    page.text([roman(format!(
        "Refused by uvs, wholly or in part (above): {}; the schedulers lblc, lblcr and twos; SCTP \
         services. A firewall-mark service (-f) needs its [[mark]] in the director's config file: \
         uvs sees frames, not netfilter's marks.",
        refused().join(", ")
    ))]);
    page.control("SH", ["ENVIRONMENT"]);
    entry(
        &mut page,
        vec![bold("UVS_SOCKET")],
        "the control socket when --socket is not given.",
    );
    page.control("SH", ["EXIT STATUS"]);
    page.text([roman(
        "0 on success; 2 for a bad command line (255 for an unknown option), as ipvsadm; 1 when the \
         director refuses the change, 2 when it cannot be reached.",
    )]);
    page.control("SH", ["SEE ALSO"]);
    page.text([
        bold("uvs"),
        roman("(8), "),
        bold("ipvsadm"),
        roman("(8); docs/cli.md in uvs's sources."),
    ]);
    page.render()
}

/// uvsadm's command line as a clap command, only for the shell
/// completions: clap does not parse uvsadm's (popt's) bundles.
pub fn command() -> Command {
    let mut cmd = Command::new("uvsadm")
        .about("ipvsadm's command line for the uvs director")
        .disable_help_flag(true)
        .disable_version_flag(true);
    let mut seen = Vec::new();
    let flags = COMMANDS
        .iter()
        .map(|c| (c.long, c.short, c.arg, c.help))
        .chain(OPTIONS.iter().flat_map(|d| {
            d.flags
                .iter()
                .map(move |f| (f.long, f.short, f.arg, d.help))
        }))
        .chain(
            EXTRA_FLAGS
                .iter()
                .map(|(f, h)| (f.long, f.short, f.arg, *h)),
        )
        .chain([("socket", '\0', Arg::Required, "PATH  the control socket")]);
    for (long, short, kind, help) in flags {
        if seen.contains(&long) {
            continue;
        }
        seen.push(long);
        let (value, text) = split(help);
        let mut a = clap::Arg::new(long).long(long).help(text.to_string());
        if short != '\0' {
            a = a.short(short);
        }
        a = match kind {
            Arg::None => a.action(ArgAction::SetTrue),
            Arg::Required => a.action(ArgAction::Set).num_args(1),
            Arg::Optional => a.action(ArgAction::Set).num_args(0..=1),
        };
        if let (false, Some(v)) = (matches!(kind, Arg::None), value) {
            a = a.value_name(v);
        }
        if long == "socket" {
            a = a.value_hint(ValueHint::FilePath);
        }
        cmd = cmd.arg(a);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling of the tables is on the page (roff escapes `-`).
    #[test]
    fn the_page_names_every_command_and_option() {
        let p = page("0");
        let names = COMMANDS
            .iter()
            .map(|c| (c.long, c.short))
            .chain(
                OPTIONS
                    .iter()
                    .flat_map(|d| d.flags.iter().map(|f| (f.long, f.short))),
            )
            .chain(EXTRA_FLAGS.iter().map(|(f, _)| (f.long, f.short)));
        for (long, short) in names {
            let l = format!(r"\-\-{}", long.replace('-', r"\-"));
            assert!(p.contains(&l), "{long} is not on the page");
            if short != '\0' {
                assert!(p.contains(&format!(r"\fB\-{short}\fR")), "-{short}");
            }
        }
        assert!(p.contains(r"\-\-socket"));
        assert!(p.contains(r"\-\-pe"), "refused options are named");
    }

    #[test]
    fn the_completion_command_is_well_formed() {
        command().debug_assert();
    }
}
