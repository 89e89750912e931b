//! `uvs director --metrics`: what the control socket answers (`uvsadm -Ln
//! --stats`, `uvs status`, `uvs health`, `uvs ha`) as Prometheus metrics.
//! Each scrape takes one [`Scrape`] of those answers and lays it out as a
//! [`Sheet`] of metric families (the services and real servers in
//! `table`, the data plane's counters in `plane`, HA in `ha`), encoded by
//! the official client (prometheus-client). Nothing is counted per packet
//! for it: the figures are the ones the data plane already keeps.
//! `http` serves the page (docs/metrics.md says why by hand).

mod ha;
pub mod http;
mod plane;
mod table;

use super::proto::{HealthRow, Snapshot};
use crate::ha::HaStatus;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The answers one scrape is made of, taken at one moment.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// `uvsadm -Ln --stats`'s table.
    pub snapshot: Snapshot,
    /// `uvs health`'s rows.
    pub health: Vec<HealthRow>,
    /// `uvs status`'s counters.
    pub status: Vec<(String, u64)>,
    /// `uvs ha` (none without peers).
    pub ha: Option<Box<HaStatus>>,
}

/// The two text formats the client encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (what Prometheus asks for first).
    OpenMetrics,
    /// Prometheus's text format 0.0.4 (what any other client gets).
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// A metric's labels, in order.
pub type Labels = Vec<(&'static str, String)>;

/// One sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Count(u64),
    Gauge(i64),
    Real(f64),
}

/// One metric family: its name (counters without `_total`, which the
/// encoder adds), help, and samples.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub help: &'static str,
    pub kind: MetricType,
    pub samples: Vec<(Labels, Value)>,
}

/// Every family of one scrape, in the order they are written.
#[derive(Debug, Default)]
pub struct Sheet {
    families: Vec<Family>,
}

impl Sheet {
    /// The family `name` (made on first use with this help and kind).
    fn family(&mut self, name: &str, help: &'static str, kind: MetricType) -> &mut Family {
        let at = match self.families.iter().position(|f| f.name == name) {
            Some(at) => at,
            None => {
                self.families.push(Family {
                    name: name.to_string(),
                    help,
                    kind,
                    samples: Vec::new(),
                });
                self.families.len() - 1
            }
        };
        &mut self.families[at]
    }

    /// Adds a counter's sample.
    pub fn counter(&mut self, name: &str, help: &'static str, labels: Labels, v: u64) {
        let f = self.family(name, help, MetricType::Counter);
        f.samples.push((labels, Value::Count(v)));
    }

    /// Adds one counter sample per reason (`reason` label).
    pub fn by_reason(&mut self, name: &str, help: &'static str, counts: &[(&str, u64)]) {
        for &(reason, v) in counts {
            self.counter(name, help, vec![("reason", reason.into())], v);
        }
    }

    /// Adds a gauge's sample.
    pub fn gauge(&mut self, name: &str, help: &'static str, labels: Labels, v: i64) {
        let f = self.family(name, help, MetricType::Gauge);
        f.samples.push((labels, Value::Gauge(v)));
    }

    /// Adds a gauge's sample that is not a whole number.
    pub fn real(&mut self, name: &str, help: &'static str, labels: Labels, v: f64) {
        let f = self.family(name, help, MetricType::Gauge);
        f.samples.push((labels, Value::Real(v)));
    }

    /// An enumeration as Prometheus writes one: a sample per possible
    /// state (label `key`), 1 for the current one (`now`) and 0 for the
    /// others; a value not among `states` is added as such, never lost.
    pub fn states(
        &mut self,
        name: &str,
        help: &'static str,
        labels: Labels,
        (key, states): (&'static str, &[&str]),
        now: &str,
    ) {
        let known = states.contains(&now);
        for s in states.iter().copied().chain((!known).then_some(now)) {
            let mut l = labels.clone();
            l.push((key, s.to_string()));
            self.gauge(name, help, l, i64::from(s == now));
        }
    }

    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The page in `format`.
    pub fn encode(self, format: Format) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing to a String cannot fail, and a label set cannot make
        // the encoder fail either: an error leaves what was written.
        let _ = match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            }
        };
        out
    }
}

impl Collector for Sheet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let mut family = encoder.encode_descriptor(&f.name, f.help, None, f.kind)?;
            for (labels, v) in &f.samples {
                let sample = family.encode_family(labels)?;
                match *v {
                    Value::Count(n) => ConstCounter::new(n).encode(sample)?,
                    Value::Gauge(n) => ConstGauge::new(n).encode(sample)?,
                    Value::Real(n) => ConstGauge::new(n).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

/// The metrics of one scrape.
pub fn sheet(s: &Scrape) -> Sheet {
    let mut sheet = Sheet::default();
    table::add(&mut sheet, &s.snapshot, &s.health);
    plane::add(&mut sheet, &s.status);
    if let Some(h) = &s.ha {
        ha::add(&mut sheet, h);
    }
    sheet
}

/// The page of one scrape in `format`.
pub fn page(s: &Scrape, format: Format) -> String {
    sheet(s).encode(format)
}

#[cfg(test)]
mod tests;
