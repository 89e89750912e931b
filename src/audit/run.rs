//! The `uvs audit` workflow: read the host (live, over ssh, or from a
//! dump), run the checks, print them; with `--fix`, plan the fixes, show
//! them, ask (or take `--yes`), apply, persist the sysctls, and audit
//! again. Returns the exit status: 0 all good, 1 warnings, 2 failures,
//! 3 could not audit.

use super::{Error, Finding, HostState, Options, exit_code, fix, render, source};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

/// Where the host's facts come from.
pub enum Source {
    Live,
    Ssh(String),
    Dump(PathBuf),
}

/// Everything `uvs audit` was asked.
pub struct Request {
    pub source: Source,
    pub options: Options,
    pub json: bool,
    pub fix: bool,
    /// Do not ask before applying fixes.
    pub yes: bool,
    /// Also apply address changes (otherwise printed only).
    pub fix_addresses: bool,
    pub sysctl_file: PathBuf,
}

fn audit_once(r: &Request) -> Result<(HostState, Vec<Finding>), Error> {
    let h = match &r.source {
        Source::Ssh(t) => source::from_ssh(t)?,
        Source::Dump(d) => source::from_dump(d)?,
        Source::Live => source::live()?,
    };
    let f = super::audit(&h, &r.options);
    Ok((h, f))
}

fn print(r: &Request, h: &HostState, f: &[Finding]) {
    if r.json {
        let v = serde_json::json!({
            "source": h.source,
            "findings": f,
            "exit": exit_code(f),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", render(h, f));
    }
}

fn failed(e: impl std::fmt::Display) -> u8 {
    tracing::error!("audit: {e}");
    3
}

/// Runs the audit as asked; the exit status.
pub fn run(r: &Request) -> u8 {
    if r.options.vips.is_empty() && r.options.mode != super::Mode::Nat && !r.options.director {
        return failed("give the VIP(s) with --vip ADDR");
    }
    let (h, f) = match audit_once(r) {
        Ok(x) => x,
        Err(e) => return failed(e),
    };
    print(r, &h, &f);
    if !r.fix {
        return exit_code(&f);
    }
    if !matches!(r.source, Source::Live) {
        return failed("--fix changes this host only; run `uvs audit --fix` on the host itself");
    }
    let plan = fix::plan(&f);
    if plan.sysctls.is_empty() && (plan.addresses.is_empty() || !r.fix_addresses) {
        for c in plan.addresses.iter().chain(&plan.manual) {
            println!("to do by hand: {c}");
        }
        println!("nothing to fix automatically");
        return exit_code(&f);
    }
    let old = std::fs::read_to_string(&r.sysctl_file).unwrap_or_default();
    let new = fix::merged_file(&old, &plan.sysctls);
    println!("\nplanned changes:");
    for (k, v) in &plan.sysctls {
        println!("  sysctl -w {k}={v}");
    }
    if r.fix_addresses {
        for c in &plan.addresses {
            println!("  {c}");
        }
    }
    if !plan.sysctls.is_empty() {
        println!("{}:\n{}", r.sysctl_file.display(), fix::diff(&old, &new));
    }
    if !r.yes {
        match confirm() {
            Err(e) => return failed(e),
            Ok(false) => {
                println!("nothing changed");
                return exit_code(&f);
            }
            Ok(true) => {}
        }
    }
    if let Err(e) = apply(r, &plan, &new) {
        return failed(e);
    }
    if !r.fix_addresses {
        for c in &plan.addresses {
            println!("address change not applied (use --fix-addresses): {c}");
        }
    }
    for c in &plan.manual {
        println!("to do by hand: {c}");
    }
    println!("\nafter the fixes:");
    match audit_once(r) {
        Ok((h, f)) => {
            print(r, &h, &f);
            exit_code(&f)
        }
        Err(e) => failed(e),
    }
}

/// Asks on the terminal; an error when there is none to ask on.
fn confirm() -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::NotInteractive);
    }
    print!("apply? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut ans = String::new();
    let _ = std::io::stdin().lock().read_line(&mut ans);
    Ok(matches!(ans.trim(), "y" | "Y" | "yes"))
}

/// The sysctls now, the file that keeps them, and (if asked) addresses.
fn apply(r: &Request, plan: &fix::Plan, new_file: &str) -> Result<(), Error> {
    fix::apply_sysctls(&plan.sysctls)?;
    if !plan.sysctls.is_empty() {
        fix::write_file(&r.sysctl_file, new_file)?;
    }
    if r.fix_addresses {
        fix::apply_addresses(&plan.addresses)?;
    }
    Ok(())
}
