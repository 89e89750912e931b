//! keepalived's notify scripts as uvs's one `notify` command. uvs runs
//! it as `sh -c CMD uvs STATE PRIORITY` (STATE: ACTIVE, BACKUP or
//! FAULT); keepalived runs `notify_master`, `notify_backup` and
//! `notify_fault` on their state with no arguments, then `notify` with
//! `INSTANCE|GROUP NAME STATE PRIORITY`, STATE being MASTER for uvs's
//! ACTIVE. The command written is a small `case` that does the same.

use super::super::read::Node;
use super::super::report::{Report, shown};
use super::super::statement::no_block;

/// The notify statements of an instance or a sync group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Notify {
    /// (uvs's state, command) of notify_master, _backup, _fault.
    pub on: Vec<(&'static str, String)>,
    /// The `notify` commands with the kind and name they are given.
    pub any: Vec<String>,
}

impl Notify {
    /// Reads `c` if it is a notify statement (`true`); `notify_stop`
    /// and the others uvs has no state for get a warning.
    pub fn read(&mut self, c: &Node, r: &mut Report) -> bool {
        let state = match c.key() {
            "notify_master" => "ACTIVE",
            "notify_backup" => "BACKUP",
            "notify_fault" => "FAULT",
            "notify" => "",
            "notify_stop" | "notify_deleted" | "notify_master_rx_lower_pri" => {
                no_block(c, r);
                r.warn(
                    &c.at,
                    format!(
                        "{} is not carried over: uvs notifies ACTIVE, BACKUP and FAULT only",
                        c.key()
                    ),
                );
                return true;
            }
            _ => return false,
        };
        if !no_block(c, r) {
            return true;
        }
        let Some(cmd) = c.arg(1) else {
            r.error(&c.at, format!("`{}` needs a script", c.key()));
            return true;
        };
        // A second word is keepalived's user to run it as.
        if c.words.len() > 2 {
            r.warn(
                &c.at,
                format!(
                    "{}: the user {} is not carried over (uvs runs it as itself)",
                    c.key(),
                    shown(&c.words[2..].join(" "))
                ),
            );
        }
        match state {
            "" => self.any.push(cmd.to_string()),
            s => self.on.push((s, cmd.to_string())),
        }
        true
    }

    /// `kind` and `name` (`INSTANCE VI_1`) for the `notify` scripts.
    pub fn named(mut self, kind: &str, name: &str) -> Notify {
        for a in &mut self.any {
            *a = format!("{a} {kind} {name}");
        }
        self
    }

    pub fn add(&mut self, other: Notify) {
        for x in other.on {
            if !self.on.contains(&x) {
                self.on.push(x);
            }
        }
        for x in other.any {
            if !self.any.contains(&x) {
                self.any.push(x);
            }
        }
    }

    /// The command for uvs's `notify`, if there is any.
    pub fn command(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.on.is_empty() {
            let mut arms = String::from("case \"$1\" in");
            for st in ["ACTIVE", "BACKUP", "FAULT"] {
                let cmds: Vec<&str> = self
                    .on
                    .iter()
                    .filter(|(s, _)| *s == st)
                    .map(|(_, c)| c.as_str())
                    .collect();
                if !cmds.is_empty() {
                    arms.push_str(&format!(" {st}) {};;", cmds.join("; ")));
                }
            }
            arms.push_str(" esac");
            parts.push(arms);
        }
        if !self.any.is_empty() {
            parts.push("s=$1; [ \"$s\" = ACTIVE ] && s=MASTER".into());
            for a in &self.any {
                parts.push(format!("{a} \"$s\" \"$2\""));
            }
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The wrapper runs each script on its state, and `notify` with
    /// keepalived's four arguments.
    #[test]
    fn the_wrapper_calls_keepalived_s_scripts_as_keepalived_does() {
        let n = Notify {
            on: vec![
                ("ACTIVE", "echo master".into()),
                ("FAULT", "echo fault".into()),
            ],
            any: vec!["echo any INSTANCE VI_1".into()],
        };
        let cmd = n.command().unwrap();
        let run = |state: &str| {
            let o = Command::new("sh")
                .args(["-c", &cmd, "uvs", state, "150"])
                .output()
                .unwrap();
            String::from_utf8(o.stdout).unwrap()
        };
        assert_eq!(run("ACTIVE"), "master\nany INSTANCE VI_1 MASTER 150\n");
        assert_eq!(run("BACKUP"), "any INSTANCE VI_1 BACKUP 150\n");
        assert_eq!(run("FAULT"), "fault\nany INSTANCE VI_1 FAULT 150\n");
        assert_eq!(Notify::default().command(), None);
    }
}
