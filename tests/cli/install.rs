//! Installing uvs as an operator would: scripts/install.sh into a staging
//! root (DESTDIR) with the programs run from there, scripts/deb.sh's
//! package installed by dpkg into a root of its own with its files where
//! the unit expects them, the man pages rendered by groff, and the bash
//! completions driven as bash drives them. The test build's own programs
//! are installed (`--bin-dir`): no release build.

use crate::text::holds;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A directory of the test's, removed at its end, even a failed one.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("uvs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    /// `path` (absolute) under this root.
    fn at(&self, path: &str) -> PathBuf {
        self.0.join(path.trim_start_matches('/'))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the test build's uvs and uvsadm are.
fn bin_dir() -> &'static Path {
    let d = Path::new(env!("CARGO_BIN_EXE_uvs")).parent().unwrap();
    assert_eq!(d, Path::new(env!("CARGO_BIN_EXE_uvsadm")).parent().unwrap());
    d
}

/// Runs `c`, which must succeed; its standard output.
#[track_caller]
fn run(c: &mut Command) -> String {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{c:?}: {}\n{out}\n{err}", o.status);
    out
}

fn script(name: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(repo().join("scripts").join(name));
    c
}

/// docs/config.md's complete example, as install.sh installs it.
fn example() -> String {
    let doc = std::fs::read_to_string(repo().join("docs/config.md")).unwrap();
    let block = doc.split("```toml\n").nth(1).unwrap();
    block.split("\n```").next().unwrap().to_string() + "\n"
}

/// The unit's `ExecStart=` program and the config file it names.
fn exec_start(unit: &Path) -> (String, String) {
    let text = std::fs::read_to_string(unit).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{}: no ExecStart", unit.display()));
    let words: Vec<&str> = line.split_whitespace().collect();
    let config = words
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1].to_string())
        .unwrap_or_else(|| panic!("ExecStart has no --config: {line}"));
    (words[0].to_string(), config)
}

/// The installed programs answer, and the director accepts the installed
/// config as the unit would start it.
fn programs_run(root: &Scratch, unit: &str) {
    let (program, config) = exec_start(&root.at(unit));
    let uvs = root.at(&program);
    holds(&run(Command::new(&uvs).arg("--version")), "uvs 0.1");
    holds(&run(Command::new(&uvs).arg("--help")), "director");
    holds(
        &run(Command::new(&uvs).args(["director", "--help"])),
        "--config",
    );
    let uvsadm = uvs.with_file_name("uvsadm");
    holds(&run(Command::new(uvsadm).arg("-h")), "--add-service");
    let check = run(Command::new(&uvs)
        .args(["director", "--check", "--config"])
        .arg(root.at(&config)));
    holds(&check, ": ok: 3 service(s), 4 real server(s)");
}

const FILES: [&str; 10] = [
    "/usr/sbin/uvs",
    "/usr/sbin/uvsadm",
    "/usr/lib/systemd/system/uvs.service",
    "/etc/uvs/uvs.toml",
    "/usr/share/man/man8/uvs.8.gz",
    "/usr/share/man/man8/uvsadm.8.gz",
    "/usr/share/bash-completion/completions/uvs",
    "/usr/share/bash-completion/completions/uvsadm",
    "/usr/share/zsh/vendor-completions/_uvs",
    "/usr/share/zsh/vendor-completions/_uvsadm",
];

#[test]
fn install_sh_installs_into_a_staging_root_and_the_programs_run() {
    let root = Scratch::new("install");
    let install = |extra: &[&str], env: &[(&str, &str)]| {
        let mut c = script("install.sh");
        c.arg("--bin-dir").arg(bin_dir()).args(extra);
        c.env("DESTDIR", &root.0).envs(env.iter().copied());
        run(&mut c)
    };
    let out = install(&[], &[]);
    for f in FILES {
        assert!(root.at(f).is_file(), "{f} is not installed:\n{out}");
        holds(&out, &format!("installed {}", root.at(f).display()));
    }
    let unit = "/usr/lib/systemd/system/uvs.service";
    let (program, config) = exec_start(&root.at(unit));
    assert_eq!(
        (program.as_str(), config.as_str()),
        ("/usr/sbin/uvs", "/etc/uvs/uvs.toml")
    );
    let installed = root.at("/etc/uvs/uvs.toml");
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), example());
    programs_run(&root, unit);

    // Again: the same files; an operator's config is kept.
    std::fs::write(&installed, example() + "# edited\n").unwrap();
    let out = install(&[], &[]);
    holds(&out, &format!("kept {}", installed.display()));
    holds(&std::fs::read_to_string(&installed).unwrap(), "# edited");
    let out = run(script("install.sh")
        .arg("--uninstall")
        .env("DESTDIR", &root.0));
    for f in FILES.iter().filter(|f| !f.starts_with("/etc")) {
        assert!(!root.at(f).exists(), "{f} is left:\n{out}");
    }
    assert!(installed.exists(), "an edited config is kept:\n{out}");

    // Another prefix: the unit names the programs where they are.
    install(&["--strip"], &[("PREFIX", "/usr/local")]);
    let unit = "/usr/local/lib/systemd/system/uvs.service";
    assert_eq!(exec_start(&root.at(unit)).0, "/usr/local/sbin/uvs");
    programs_run(&root, unit);
}

/// groff renders both pages with every warning on and says nothing.
#[test]
fn the_man_pages_render_without_warnings() {
    for (what, name) in [("man", "UVS"), ("uvsadm-man", "UVSADM")] {
        let page = run(Command::new(env!("CARGO_BIN_EXE_uvs")).args(["generate", what]));
        let mut groff = Command::new("groff")
            // -P-cbou: plain text, no overstriking.
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("groff ({e}): scripts/deps.sh installs groff-base"));
        std::io::Write::write_all(&mut groff.stdin.take().unwrap(), page.as_bytes()).unwrap();
        let o = groff.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.is_empty(), "{what}: {err}");
        let text = String::from_utf8_lossy(&o.stdout);
        holds(&text, &format!("{name}(8)"));
        holds(&text, "--socket");
        if what == "man" {
            holds(&text, "UVS DIRECTOR");
            holds(&text, "--max-conns");
        }
    }
}

/// What bash offers for the last word of `line`, driving the generated
/// completion function as bash's `complete -F` does.
fn complete(script: &Path, program: &str, line: &str) -> Vec<String> {
    let drive = r#"source "$1"; program=$2; shift 2
spec=$(complete -p "$program") || exit 3
fn=${spec#*-F }; fn=${fn%% *}
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
"$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}""#;
    let mut words: Vec<&str> = line.split(' ').collect();
    if line.ends_with(' ') {
        words.pop();
        words.push("");
    }
    let out = run(Command::new("bash")
        .args(["-c", drive, "drive"])
        .arg(script)
        .arg(program)
        .args(words));
    out.lines().map(|l| l.trim().to_string()).collect()
}

#[test]
fn the_bash_completions_complete_commands_and_flags() {
    let dir = Scratch::new("completion");
    let generated = |what: &str| {
        let p = dir.0.join(what);
        let text = run(Command::new(env!("CARGO_BIN_EXE_uvs")).args(["generate", what]));
        std::fs::write(&p, text).unwrap();
        run(Command::new("bash").arg("-n").arg(&p));
        p
    };
    let (uvs, uvsadm) = (generated("bash"), generated("uvsadm-bash"));
    assert_eq!(complete(&uvs, "uvs", "uvs dir"), ["director"]);
    assert_eq!(complete(&uvs, "uvs", "uvs director --max"), ["--max-conns"]);
    // Every flag of `uvs director --help` is offered after `--`.
    let offered = complete(&uvs, "uvs", "uvs director --");
    let help = run(Command::new(env!("CARGO_BIN_EXE_uvs")).args(["director", "--help"]));
    let flags = help.split_whitespace().filter_map(|w| {
        let w = w.trim_end_matches([',', '.']);
        (w.starts_with("--")
            && w.len() > 2
            && w[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .then_some(w)
    });
    for f in flags {
        assert!(
            offered.iter().any(|o| o == f),
            "{f} is not offered: {offered:?}"
        );
    }
    let subcommands = complete(&uvs, "uvs", "uvs ");
    for s in ["director", "reload", "import-keepalived"] {
        assert!(subcommands.iter().any(|c| c == s), "{s}: {subcommands:?}");
    }
    let add = complete(&uvsadm, "uvsadm", "uvsadm --add-se");
    assert_eq!(add, ["--add-service", "--add-server"]);
    assert_eq!(complete(&uvsadm, "uvsadm", "uvsadm -L --stat"), ["--stats"]);
    for (what, head) in [("zsh", "#compdef uvs"), ("uvsadm-zsh", "#compdef uvsadm")] {
        let text = run(Command::new(env!("CARGO_BIN_EXE_uvs")).args(["generate", what]));
        assert!(text.starts_with(head), "{what}: {}", &text[..40]);
    }
}

/// dpkg's own database in an empty root: what `dpkg --root` needs.
fn dpkg_root(root: &Scratch) {
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
        "var/log",
    ] {
        std::fs::create_dir_all(root.0.join(d)).unwrap();
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        std::fs::write(root.0.join(f), "").unwrap();
    }
}

fn dpkg(root: &Scratch, args: &[&str]) -> String {
    // The maintainer scripts run outside the root (it has no shell), with
    // DPKG_ROOT naming it: they leave systemd alone there.
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.0.display()))
        .args(["--force-script-chrootless", "--force-depends"])
        .args(args))
}

#[test]
fn the_deb_installs_with_dpkg_and_its_files_are_where_the_unit_expects_them() {
    if !rustix::process::geteuid().is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "dpkg -i into a root needs root under CI"
        );
        eprintln!("skipped: dpkg -i into a root of its own needs root");
        return;
    }
    let out = run(script("deb.sh")
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--fast"));
    let deb = repo().join(out.lines().last().unwrap());
    let arch = run(Command::new("dpkg").arg("--print-architecture"));
    let name = format!("uvs_{}_{}.deb", env!("CARGO_PKG_VERSION"), arch.trim());
    assert_eq!(deb, repo().join("target/debian").join(name));
    let field = |f: &str| run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f));
    holds(&field("Depends"), "libc6");
    assert_eq!(field("Package").trim(), "uvs");

    let root = Scratch::new("dpkg");
    dpkg_root(&root);
    dpkg(&root, &["-i", deb.to_str().unwrap()]);
    let status = dpkg(&root, &["-s", "uvs"]);
    holds(&status, "Status: install ok installed");
    holds(&status, "Conffiles:\n /etc/uvs/uvs.toml");
    for f in FILES {
        assert!(root.at(f).is_file(), "{f} is not installed");
    }
    programs_run(&root, "/usr/lib/systemd/system/uvs.service");

    dpkg(&root, &["-r", "uvs"]);
    assert!(!root.at("/usr/sbin/uvs").exists());
    assert!(
        root.at("/etc/uvs/uvs.toml").exists(),
        "a removed package keeps its conffile"
    );
    dpkg(&root, &["-P", "uvs"]);
    assert!(!root.at("/etc/uvs/uvs.toml").exists(), "a purge removes it");
}
