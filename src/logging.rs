//! The daemon's log, in one of three forms (`--log-format`):
//! - `text`: one line each on stderr, in the form uvs always wrote
//!   (`uvs: message`, `uvs: warning: message`, `uvs: error: message`),
//!   the event's fields after the message as `key=value`;
//! - `json`: one object per line on stderr (timestamp, level, target,
//!   message, and the event's fields beside it), for log shippers;
//! - `journal`: the systemd journal (tracing-journald), each event's level
//!   its priority, its fields journal fields.
//!
//! `UVS_LOG` filters by level and module, as `RUST_LOG` does (default
//! `info`). Nothing is logged per packet: the data plane counts, and its
//! rare warnings are rate-limited where they are raised.
//!
//! The log starts (`init`) before any setting is read: in the journal when
//! stderr is the journal's stream (`JOURNAL_STREAM` names its device and
//! inode, as systemd sets it for a service), in text otherwise.
//! `set_format` switches it once `uvs director`'s settings are known.

use crate::config::settings::LogFormat;
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// uvs's line format.
struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        write!(w, "uvs: {level}")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// The subscriber under the output: the registry and the `UVS_LOG` filter.
type Base = Layered<EnvFilter, Registry>;
/// One of the outputs, boxed so that it can be swapped.
type Output = Box<dyn Layer<Base> + Send + Sync>;

/// Swaps the output once the settings are known.
static HANDLE: OnceLock<reload::Handle<Output, Base>> = OnceLock::new();
/// The output in use (a `LogFormat` as a number).
static CURRENT: AtomicU8 = AtomicU8::new(0);
/// The format last asked for (none: `u8::MAX`): a journal that is not
/// there is reported once.
static ASKED: AtomicU8 = AtomicU8::new(u8::MAX);

fn code(f: LogFormat) -> u8 {
    match f {
        LogFormat::Text => 0,
        LogFormat::Json => 1,
        LogFormat::Journal => 2,
    }
}

/// The output of `format` (the text and JSON forms written to `w`); the
/// journal's fails where there is no journal.
fn output<W>(format: LogFormat, w: W) -> std::io::Result<Output>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Ok(match format {
        LogFormat::Text => lines(w),
        LogFormat::Json => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(w)
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false),
        ),
        LogFormat::Journal => {
            Box::new(tracing_journald::layer()?.with_syslog_identifier("uvs".into()))
        }
    })
}

/// Whether `JOURNAL_STREAM` (`DEVICE:INODE`) names the file `dev`:`ino`.
fn names_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    let parse = |(d, i): (&str, &str)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?));
    journal_stream.split_once(':').and_then(parse) == Some((dev, ino))
}

/// Whether stderr is the journal's stream: systemd's documented test
/// (systemd.exec(5), `$JOURNAL_STREAM`), so that a service whose stderr
/// was redirected elsewhere keeps text.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    // The stat of what descriptor 2 is (its socket's device and inode).
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => names_stream(&v.to_string_lossy(), m.dev(), m.ino()),
        Err(_) => false,
    }
}

/// Starts the process's log (call once, first thing): the journal when
/// stderr is the journal's stream, text on stderr otherwise.
pub fn init() {
    let filter = EnvFilter::try_from_env("UVS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let auto = match stderr_is_journal() {
        true => LogFormat::Journal,
        false => LogFormat::Text,
    };
    let (first, format) = match output(auto, std::io::stderr) {
        Ok(o) => (o, auto),
        Err(_) => (lines(std::io::stderr), LogFormat::Text),
    };
    let (layer, handle) = reload::Layer::new(first);
    if tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .is_ok()
    {
        let _ = HANDLE.set(handle);
        CURRENT.store(code(format), Ordering::Relaxed);
    }
}

/// The text form, written to `w`.
fn lines<W>(w: W) -> Output
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    Box::new(
        tracing_subscriber::fmt::layer()
            .with_writer(w)
            .event_format(Line),
    )
}

/// Switches the log to `format` (`--log-format`) where it was given; not
/// given, the log stays as `init` chose it. A journal that cannot be
/// reached leaves the log as it is, saying so.
pub fn set_format(format: Option<LogFormat>) {
    let (Some(format), Some(handle)) = (format, HANDLE.get()) else {
        return;
    };
    let asked = ASKED.swap(code(format), Ordering::Relaxed);
    if CURRENT.load(Ordering::Relaxed) == code(format) || asked == code(format) {
        return;
    }
    match output(format, std::io::stderr) {
        Ok(o) => {
            if handle.reload(o).is_ok() {
                CURRENT.store(code(format), Ordering::Relaxed);
            }
        }
        Err(e) => {
            tracing::warn!("--log-format journal: no journal here ({e}); the log stays as it is")
        }
    }
}

/// The error a command ends with: on stderr as it always was (`uvs:
/// message`) in text, else an error event of the log in use.
pub fn fatal(message: &str) {
    match CURRENT.load(Ordering::Relaxed) {
        0 => eprintln!("uvs: {message}"),
        _ => tracing::error!(target: "uvs", "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(format: LogFormat) -> String {
        let buf = Buf::default();
        let w = buf.clone();
        let out = output(format, move || w.clone()).unwrap();
        let sub = tracing_subscriber::registry()
            .with(EnvFilter::new("info"))
            .with(out);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(port = 80, "loaded {}", "uvs.toml");
            tracing::warn!("a warning");
            tracing::error!("an error");
        });
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn text_is_uvs_s_lines() {
        assert_eq!(
            logged(LogFormat::Text),
            "uvs: loaded uvs.toml port=80\nuvs: warning: a warning\nuvs: error: an error\n"
        );
    }

    #[test]
    fn json_is_one_object_per_line() {
        let out = logged(LogFormat::Json);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{out}");
        let first = &lines[0];
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["message"], "loaded uvs.toml");
        assert_eq!(first["port"], 80);
        assert_eq!(first["target"], "uvs::logging::tests");
        assert!(first["timestamp"].as_str().is_some_and(|t| t.len() > 18));
        assert_eq!(
            (&lines[1]["level"], &lines[2]["level"]),
            (&"WARN".into(), &"ERROR".into())
        );
    }

    #[test]
    fn journal_stream_names_a_device_and_inode() {
        assert!(names_stream("8:12345", 8, 12345));
        assert!(!names_stream("8:12345", 8, 12346));
        assert!(!names_stream("8:x", 8, 12345));
        assert!(!names_stream("", 0, 0));
    }
}
