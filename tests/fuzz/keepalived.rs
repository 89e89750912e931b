//! keepalived.conf: the fixture mutated, and files built from statements
//! and braces (one-line blocks, includes, nesting, repeats), imported.

use super::text::text_mutations;
use super::{config, fake_hop, model};
use proptest::prelude::*;
use proptest::test_runner::Config;

const KEEPALIVED: &str = include_str!("../fixtures/keepalived/keepalived.conf");

proptest! {
    #![proptest_config(config())]

    /// keepalived.conf of any shape: an import or an error, never a
    /// panic; what it prints is a config the director loads.
    #[test]
    fn keepalived_import(input in text_mutations(KEEPALIVED)) {
        let dir = std::env::temp_dir().join(format!("uvs-fuzz-ka-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("keepalived.conf");
        let _ = std::fs::remove_file(&f);
        std::fs::write(&f, &input).unwrap();
        check_import(&f)?;
    }
}

proptest! {
    // The fast generator: most of a case's time went to ChaCha in a debug
    // build.
    #![proptest_config(Config {
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..config()
    })]

    /// keepalived.conf built from statements and braces: one-line blocks,
    /// braces glued to words, includes (of a config, of a file that is
    /// not config, of itself, of /dev/zero), deep nesting and many
    /// repeats. Written once a statement or brace a line and once with
    /// the braces glued or spaced on shared lines, it imports the same;
    /// a file that is not config is never shown.
    #[test]
    fn keepalived_one_line_blocks(
        main in ka_tokens(),
        inc in ka_tokens(),
        depth in 0usize..20,
        repeat in prop_oneof![8 => Just(1usize), 1 => 2usize..200],
        glue in any::<u64>(),
    ) {
        let mut main_toks = Vec::new();
        for _ in 0..depth {
            main_toks.push(KaTok::Stmt(0));
            main_toks.push(KaTok::Open);
        }
        for _ in 0..repeat {
            main_toks.extend(main.iter().cloned());
        }
        main_toks.extend(std::iter::repeat_n(KaTok::Close, depth));
        let mut outcomes = Vec::new();
        for (n, one_line) in [(0, false), (1, true)] {
            let dir = std::env::temp_dir()
                .join(format!("uvs-fuzz-ka1-{}", std::process::id()))
                .join(n.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            // New files rather than truncated ones: ext4 flushes a file
            // truncated and written again when it is closed.
            let write = |name: &str, text: &str| {
                let _ = std::fs::remove_file(dir.join(name));
                std::fs::write(dir.join(name), text).unwrap();
            };
            write("shadow", SHADOW);
            write("inc.conf", &ka_text(&inc, one_line, glue));
            write("keepalived.conf", &ka_text(&main_toks, one_line, glue));
            let f = dir.join("keepalived.conf");
            outcomes.push(check_import(&f)?);
        }
        let (a, b) = (&outcomes[0], &outcomes[1]);
        prop_assert_eq!(a, b, "one statement a line and one-line blocks differ");
    }
}

/// What an import came to, without its places (the two writings of one
/// file differ in lines): the config's services, or the error count;
/// and the warning count.
#[derive(Debug, PartialEq)]
enum KaOutcome {
    Config(String, usize),
    Refused(usize, usize),
}

/// Imports `f`; what must hold of any import: a config the director
/// loads (its file checks and its table), or errors that each name a
/// place; no line of the file that is not config (SHADOW) shown.
fn check_import(f: &std::path::Path) -> Result<KaOutcome, TestCaseError> {
    let shown = |lines: &[String]| lines.iter().any(|l| l.contains(SECRET));
    match uvs::import::keepalived::import(f) {
        Ok(i) => {
            prop_assert!(!i.config.contains(SECRET) && !shown(&i.warnings));
            for l in &i.warnings {
                placed(f, l)?;
            }
            let c = uvs::config::parse(std::path::Path::new("imported.toml"), i.config.as_bytes());
            let c = c.map_err(|e| TestCaseError::fail(format!("{e}\n{}", i.config)))?;
            let ops = c.ops_from(&uvs::config::Config::default());
            let m = model();
            if let Err((_, e)) = m.apply_all(&ops, &mut fake_hop, &mut |_, _| {}) {
                return Err(TestCaseError::fail(format!(
                    "the director refuses it: {e}\n{}",
                    i.config
                )));
            }
            let body = i
                .config
                .split_once("\n[director]")
                .map_or("", |x| x.1)
                .to_string();
            Ok(KaOutcome::Config(body, i.warnings.len()))
        }
        Err(e) => {
            prop_assert!(!e.errors.is_empty());
            prop_assert!(!shown(&e.errors) && !shown(&e.warnings));
            for l in e.errors.iter().chain(&e.warnings) {
                placed(f, l)?;
            }
            Ok(KaOutcome::Refused(e.errors.len(), e.warnings.len()))
        }
    }
}

/// A finding names a file of the import's directory and a line that the
/// file has (`FILE:LINE: …`, or `FILE: …` for the file as a whole).
fn placed(f: &std::path::Path, l: &str) -> Result<(), TestCaseError> {
    let dir = f.parent().unwrap().display().to_string();
    let rest = l.strip_prefix(&dir).and_then(|r| r.strip_prefix('/'));
    let rest = rest.ok_or_else(|| TestCaseError::fail(format!("not placed: {l}")))?;
    let (name, after) = rest.split_once(':').unwrap_or((rest, ""));
    let bytes = std::fs::read(f.with_file_name(name))
        .map_err(|e| TestCaseError::fail(format!("{name}: {e}: {l}")))?;
    let lines = String::from_utf8_lossy(&bytes).lines().count();
    if let Some(line) = after
        .split(':')
        .next()
        .and_then(|n| n.parse::<usize>().ok())
    {
        prop_assert!(line >= 1 && line <= lines, "no line {} in {}", line, name);
    }
    Ok(())
}

/// A file shaped like /etc/shadow, and the secret in it.
const SECRET: &str = "S3cretSa1tNeverShown";
const SHADOW: &str = "root:$6$S3cretSa1tNeverShown$Xq9vZp0rRk4mW2yT7uQ1sE8bN5cV:19000:0:99999:7:::\n\
S3cretSa1tNeverShown\n";

/// Statements the generated keepalived.conf files are made of: valid
/// ones, wrong ones (duplicates come from repeats), includes, comments.
const KA_STATEMENTS: &[&str] = &[
    "virtual_server 198.18.0.100 80",
    "virtual_server 198.18.0.101 53",
    "virtual_server group G",
    "virtual_server_group G",
    "198.18.0.102 80",
    "virtual_server 0.0.0.0 0",
    "virtual_server 198.18.0.103 99999",
    "virtual_server fwmark 7",
    "protocol TCP",
    "protocol UDP",
    "lb_kind NAT",
    "lb_kind DR",
    "lb_kind TUN",
    "lb_algo wrr",
    "persistence_timeout 50",
    "quorum 2",
    "quorum_up \"/bin/true up\"",
    "delay_loop 1",
    "inhibit_on_failure",
    "sorry_server 198.18.0.13 80",
    "real_server 198.18.0.11 80",
    "real_server 198.18.0.12",
    "real_server 198.18.0.100 80",
    "real_server 198.18.0.11 8080",
    "weight 3",
    "weight 3 HTTP_GET",
    "weight -5",
    "TCP_CHECK",
    "HTTP_GET",
    "MISC_CHECK",
    "DNS_CHECK",
    "url",
    "path / status_code 200",
    "path /",
    "status_code 200 300-399 x",
    "digest 9b3a0c85a887a256d6939da88aabd8cd",
    "connect_timeout 2",
    "connect_port 8080",
    "connect_port 0",
    "retry 3",
    "misc_path \"/bin/true {x}\"",
    "misc_dynamic",
    "name example.com",
    "global_defs",
    "vrrp_instance VI_1",
    "include inc.conf",
    "include shadow",
    "include /dev/zero",
    "include keepalived.conf",
    "include *.conf",
    "include {inc,shadow}",
    "unknown_option 1",
    "$VIP=198.18.0.100",
    "! a comment { }",
];

#[derive(Debug, Clone)]
enum KaTok {
    Stmt(usize),
    Open,
    Close,
}

fn ka_tokens() -> impl Strategy<Value = Vec<KaTok>> {
    let tok = prop_oneof![
        3 => (0..KA_STATEMENTS.len()).prop_map(KaTok::Stmt),
        2 => Just(KaTok::Open),
        2 => Just(KaTok::Close),
    ];
    prop::collection::vec(tok, 0..48)
}

/// The tokens as text: each on a line of its own, or (`one_line`, the
/// separators drawn from `glue`'s bits) braces glued to their neighbours or spaced on shared lines. Two
/// statements always have a line end between them, and an include or a
/// comment ends its line: keepalived would read them as one otherwise.
fn ka_text(toks: &[KaTok], one_line: bool, glue: u64) -> String {
    let mut out = String::new();
    let mut prev_stmt = false;
    for (i, t) in toks.iter().enumerate() {
        let sep = match (one_line, glue.rotate_left(2 * i as u32) & 3) {
            (false, _) => "\n",
            (true, 0) => "",
            (true, 1) => " ",
            (true, 2) => "\t ",
            (true, _) => "\n",
        };
        match t {
            KaTok::Stmt(s) => {
                let s = KA_STATEMENTS[*s];
                out.push_str(if prev_stmt { "\n" } else { sep });
                out.push_str(s);
                let ends_line = s.starts_with(['!', '#']) || s.starts_with("include");
                if ends_line {
                    out.push('\n');
                }
                prev_stmt = !ends_line;
            }
            KaTok::Open | KaTok::Close => {
                out.push_str(sep);
                out.push(if matches!(t, KaTok::Open) { '{' } else { '}' });
                prev_stmt = false;
            }
        }
    }
    out.push('\n');
    out
}
