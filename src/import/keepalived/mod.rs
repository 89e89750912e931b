//! `uvs import-keepalived FILE`: keepalived.conf's virtual servers as a
//! uvs config file (docs/config.md). Everything uvs carries over is
//! printed; everything it does not gets a warning naming the file and
//! line, and what replaces it where there is something. What the director
//! would refuse (a duplicate virtual or real server, a port out of range,
//! an address that can never be one), and what keepalived itself does
//! not read, is an error with its place, and then no config is printed.
//!
//! Reading and translating are apart: [`read`] turns the files into a
//! tree of statements by keepalived's lexical rules ([`syntax`]) and
//! vocabulary ([`keywords`]); [`convert`] translates the tree into the
//! config's own file types ([`service`], [`check`]), reading each
//! statement's values through [`statement`]; [`output`] writes them as
//! TOML; [`verify`] finds what the director would refuse; [`report`]
//! keeps the findings.

mod check;
mod convert;
mod converted;
mod keywords;
mod output;
mod read;
mod report;
mod service;
mod statement;
mod syntax;
mod verify;
mod vrrp;

use report::Report;
use std::path::Path;

/// The import: the config text and the warnings (each `FILE:LINE: …`).
#[derive(Debug, Default)]
pub struct Imported {
    pub config: String,
    pub warnings: Vec<String>,
}

/// A refused import: every error found (each `FILE:LINE: …`), and the
/// warnings found along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.errors.join("\n"))
    }
}

/// Converts keepalived.conf (with its includes) to uvs's config text.
pub fn import(path: &Path) -> Result<Imported, ImportError> {
    let mut report = Report::default();
    let converted =
        read::read(path, &mut report).map(|nodes| convert::convert(path, &nodes, &mut report));
    if let Some(c) = &converted {
        verify::identities(c, &mut report);
        if !report.has_errors() {
            verify::director_accepts(c, &mut report);
        }
    }
    let ok = converted.is_some() && !report.has_errors();
    let (warnings, mut errors) = report.finish();
    match converted {
        Some(c) if ok => Ok(Imported {
            config: c.text,
            warnings,
        }),
        _ => {
            if errors.is_empty() {
                errors.push(format!("{}: not imported", path.display()));
            }
            Err(ImportError { errors, warnings })
        }
    }
}

#[cfg(test)]
mod tests;
