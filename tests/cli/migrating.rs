//! docs/migrating.md's commands run as written: every command of its
//! `sh` blocks not marked `# (host)` (those need a real director), in a
//! scratch directory holding a copy of the unicast pair's keepalived.conf,
//! with the built `uvs` first on the PATH.

use std::path::Path;
use std::process::Command;

#[test]
fn the_migration_guide_s_commands_run_as_written() {
    let doc = include_str!("../../docs/migrating.md");
    let mut script = String::from("set -e\n");
    let mut run = 0;
    let mut in_sh = false;
    for line in doc.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && !l.is_empty() && !l.starts_with('#') && !l.contains("# (host)") => {
                script.push_str(l);
                script.push('\n');
                run += 1;
            }
            _ => {}
        }
    }
    assert!(run >= 5, "{script}");
    let dir = std::env::temp_dir().join(format!("uvs-migrating-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived/vrrp/unicast.conf");
    std::fs::copy(&fixture, dir.join("keepalived.conf")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_uvs")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .env("PATH", path)
        .output()
        .unwrap();
    let toml = std::fs::read_to_string(dir.join("uvs.toml")).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        o.status.success(),
        "{script}\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(toml.contains("peers = [\"198.18.0.3\"]"), "{toml}");
    uvs::config::parse(Path::new("uvs.toml"), toml.as_bytes()).unwrap();
}
