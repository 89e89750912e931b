//! The daemon's log: `tracing` events as one line each on stderr, in the
//! form uvs always wrote (`uvs: message`, `uvs: warning: message`,
//! `uvs: error: message`), the event's fields after the message as
//! `key=value`. `UVS_LOG` filters by level and module, as `RUST_LOG` does
//! (default `info`). Nothing is logged per packet: the data plane counts,
//! and its rare warnings are rate-limited where they are raised.

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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

/// Sends the process's events to stderr (call once, first thing).
pub fn init() {
    let filter = EnvFilter::try_from_env("UVS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .event_format(Line)
        .try_init();
}
