//! The exec check, keepalived's MISC_CHECK: a command run by `sh -c`,
//! judged by its exit code.

use super::{CheckError, CheckSpec, Passed};

/// Runs `command`, killed at the check's timeout; `dynamic` as in
/// [`exit_verdict`].
pub(super) async fn run(
    spec: &CheckSpec,
    command: &str,
    dynamic: bool,
) -> Result<Passed, CheckError> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(spec.timeout, child).await {
        Err(_) => Err(CheckError::ExecTimedOut {
            command: command.to_string(),
            after: spec.timeout,
        }),
        Ok(Err(source)) => Err(CheckError::ExecFailed {
            command: command.to_string(),
            source,
        }),
        Ok(Ok(st)) => exit_verdict(command, st.code(), dynamic),
    }
}

/// keepalived's MISC_CHECK rule: exit 0 is up, any other code down, and
/// killed by a signal is down. With `dynamic` (misc_dynamic) 1 is down
/// and 2-255 are up with the weight code - 2.
pub fn exit_verdict(command: &str, code: Option<i32>, dynamic: bool) -> Result<Passed, CheckError> {
    let command = command.to_string();
    match code {
        Some(0) => Ok(None),
        Some(c @ 2..=255) if dynamic => Ok(Some(c as u32 - 2)),
        Some(code) => Err(CheckError::Exited { command, code }),
        None => Err(CheckError::Killed { command }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(code: Option<i32>, dynamic: bool) -> Result<Passed, String> {
        exit_verdict("c", code, dynamic).map_err(|e| e.to_string())
    }

    #[test]
    fn without_misc_dynamic_every_non_zero_exit_is_down() {
        assert_eq!(verdict(Some(0), false), Ok(None));
        for code in [1, 2, 3, 12, 255] {
            assert_eq!(
                verdict(Some(code), false),
                Err(format!("`c` exited {code}"))
            );
        }
        assert!(verdict(None, false).is_err());
    }

    #[test]
    fn with_misc_dynamic_two_and_up_set_the_weight() {
        assert_eq!(verdict(Some(0), true), Ok(None));
        assert!(verdict(Some(1), true).is_err());
        assert_eq!(verdict(Some(2), true), Ok(Some(0)));
        assert_eq!(verdict(Some(12), true), Ok(Some(10)));
        assert_eq!(verdict(Some(255), true), Ok(Some(253)));
        assert!(verdict(None, true).is_err());
    }

    /// A real script: exit 2 without misc_dynamic is a failed check.
    #[test]
    fn a_script_exiting_2_is_down_without_misc_dynamic() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let spec = super::super::retry::tests::spec(0, 0.1);
        let r = rt.block_on(run(&spec, "exit 2", false));
        assert_eq!(
            r.map_err(|e| e.to_string()),
            Err("`exit 2` exited 2".into())
        );
        assert_eq!(rt.block_on(run(&spec, "exit 2", true)).ok(), Some(Some(0)));
    }
}
