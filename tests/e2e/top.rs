//! End-to-end: `uvs top` in a real terminal (a tmux pane) after known
//! traffic shows the server that got it with connections per second, its
//! health and the director's HA role; q ends it with the terminal as it
//! was (the shell's screen back, the cursor shown, line mode and echo).

use crate::support::{Lab, RS1, RS2, VIP, wait_until};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

/// A tmux server of the test's own (its own socket), killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux (scripts/deps.sh installs it)")
    }

    fn capture(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    fn show(&self, what: &str) -> String {
        let o = self.run(&["display-message", "-p", "-t", "top", what]);
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The words of the pane's line for real server `rs`.
fn server_row(pane: &str, rs: &str) -> Vec<String> {
    let at = format!("{rs}:80");
    pane.lines()
        .find(|l| l.trim_start().starts_with("->") && l.contains(&at))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Conn/s of a real server's row (`->`, address, forward, weight,
/// active, inactive, then the rates).
fn cps(row: &[String]) -> u64 {
    row.get(6).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn top_shows_rates_health_and_role_in_a_terminal() {
    if !crate::support::fixed_backend_run() {
        return;
    }
    let Some(mut l) = Lab::up(2) else { return };
    l.start_servers(2);
    // A director with a peer that is not there: it becomes active alone.
    let key = l.ha_key();
    let key = key.to_str().unwrap().to_string();
    l.start_director_with(&[
        "--interface",
        "eth0",
        "--peer",
        "198.18.0.3",
        "--ha-key-file",
        &key,
        "--heartbeat-ms",
        "50",
    ]);
    let sock = l.socket();
    let sock = sock.to_str().unwrap();
    let uvs = env!("CARGO_BIN_EXE_uvs");
    let role = || {
        let o = l.exec("dir", uvs, &["ha", "--json", "--socket", sock]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()["role"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    wait_until(
        Duration::from_secs(5),
        || role() == "active",
        || l.log("director.log"),
    );
    // All new connections to rs1: rs2 has weight 0.
    l.dr_services("wrr", 1, 0);
    // The sync as `-L --daemon` says it, in JSON too (the lab has the peer).
    let text = l.adm("-L --daemon");
    let d: serde_json::Value = serde_json::from_str(&l.adm("-L --daemon --json")).unwrap();
    let d = &d["daemons"][0];
    assert_eq!(
        (&d["role"], &d["peer"]),
        (&"master".into(), &"198.18.0.3".into()),
        "{d}"
    );
    // (seq moves with the stream: its value is not compared.)
    let head = format!(
        "master sync daemon (peer=198.18.0.3, syncid=0, maxlen={}, port=5405, seq=",
        d["maxlen"]
    );
    assert!(text.starts_with(&head) && d["seq"].is_u64(), "{text}\n{d}");

    let tmux = Tmux {
        socket: l.dir.join("tmux.sock"),
    };
    let stty = l.dir.join("stty.txt");
    let cmd = format!(
        "{uvs} top --socket {sock} --interval 0.3; stty -a > {}; sleep 60",
        stty.display()
    );
    let o = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "40",
        &cmd,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_until(
        Duration::from_secs(5),
        || tmux.capture().contains(&format!("{VIP}:80")),
        || tmux.capture(),
    );
    assert_eq!(tmux.show("#{alternate_on}"), "1", "{}", tmux.capture());

    let t = l.tcp_names(60);
    assert_eq!(crate::support::count(&t, "rs1"), 60, "{t}");
    // The estimator samples every 2 s: the next frames show the rate.
    wait_until(
        Duration::from_secs(6),
        || cps(&server_row(&tmux.capture(), RS1)) > 0,
        || tmux.capture(),
    );
    let pane = tmux.capture();
    let rs1 = server_row(&pane, RS1);
    assert_eq!(rs1.last().map(String::as_str), Some("up"), "{pane}");
    let rs2 = server_row(&pane, RS2);
    assert_eq!(
        (cps(&rs2), rs2.last().map(String::as_str)),
        (0, Some("up")),
        "{pane}"
    );
    let head = pane.lines().next().unwrap_or("");
    assert!(head.contains("role active"), "{pane}");
    assert!(head.contains("peer 198.18.0.3 gone"), "{pane}");

    // q: the view ends, the terminal as it was (the shell after it
    // writes stty's modes, then waits).
    tmux.run(&["send-keys", "-t", "top", "q"]);
    wait_until(
        Duration::from_secs(3),
        || std::fs::metadata(&stty).is_ok_and(|m| m.len() > 0),
        || tmux.capture(),
    );
    assert_eq!(tmux.show("#{alternate_on}"), "0");
    assert_eq!(tmux.show("#{cursor_flag}"), "1");
    assert!(!tmux.capture().contains("uvs top -"), "{}", tmux.capture());
    let modes = std::fs::read_to_string(&stty).unwrap_or_default();
    let words: Vec<&str> = modes.split_whitespace().collect();
    for m in ["icanon", "echo", "isig"] {
        assert!(words.contains(&m), "{m} not restored: {modes}");
    }
}
