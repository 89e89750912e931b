//! The config file as the control plane's source of the table: read at
//! start, read again at each reload and compared with what it held when
//! last applied.

use super::{Changes, Config, counted, load};
use crate::control::plan::{Plan, Reload, Source, SourceError};
use crate::control::proto::ReloadReport;
use std::path::PathBuf;

/// A config file and what it held when last applied.
pub struct FileSource {
    path: PathBuf,
    last: Config,
    read: Option<Config>,
}

impl FileSource {
    /// The file at `path`, as loaded (`cfg`).
    pub fn new(path: PathBuf, cfg: Config) -> FileSource {
        FileSource {
            path,
            last: cfg,
            read: None,
        }
    }
}

impl Source for FileSource {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn start(&self) -> (Plan, Vec<String>) {
        let c = &self.last;
        let mut lines = Vec::new();
        if c.services.is_empty() {
            // Nothing runs yet (a --takeover start does not come here), so
            // nothing is lost: an operator may add services with uvsadm.
            lines.push(format!(
                "warning: {} has no services: the table starts empty (add services to the \
                 file and `uvs reload`, or with uvsadm)",
                self.path.display()
            ));
        }
        lines.push(format!(
            "loaded {}: {} services, {} real servers",
            self.path.display(),
            c.services.len(),
            c.services
                .iter()
                .map(|s| s.real_servers.len())
                .sum::<usize>()
        ));
        (c.plan_from(&Config::default()), lines)
    }

    fn supervision(&self) -> Plan {
        Plan {
            ops: Vec::new(),
            ..self.last.plan_from(&self.last)
        }
    }

    fn reload(&mut self) -> Result<Reload, SourceError> {
        let file = self.path.display();
        let new = load(&self.path)?;
        let changes = Changes::between(&self.last, &new);
        let plan = new.plan_from(&self.last);
        let mut summary = format!(
            "{} to the table ({})",
            counted(plan.ops.len(), "change"),
            changes.counts()
        );
        for l in changes.lines() {
            summary += "\n  ";
            summary += &l;
        }
        let refused_unless_forced = changes.removes_every_service().then(|| {
            format!(
                "{file} has no services: this reload would remove all {} the file had and end \
                 their connections (an empty or truncated file?). Nothing changed. If the file is \
                 right, apply it with `uvs reload --force` (a SIGHUP cannot force it)\n{summary}",
                counted(changes.removed(), "service")
            )
        });
        let changes_nothing = plan.ops.is_empty() && changes.is_empty();
        let report = ReloadReport {
            file: file.to_string(),
            ..changes.report(plan.ops.len())
        };
        self.read = Some(new);
        Ok(Reload {
            plan,
            summary,
            report,
            changes_nothing,
            refused_unless_forced,
        })
    }

    fn commit(&mut self) {
        if let Some(c) = self.read.take() {
            self.last = c;
        }
    }
}
