//! Publishing: the one step by which a configuration reaches the data
//! plane. The model (and the routes towards clients) become a new
//! immutable [`Table`] with the next generation, swapped in with one
//! atomic store; the data plane notices the new generation between frames.

use super::model::Model;
use crate::io::bpf::Steering;
use crate::lvs::table::{LinkRoute, Table};
use arc_swap::ArcSwap;
use std::sync::Arc;

pub struct Publisher {
    shared: Arc<ArcSwap<Table>>,
    generation: u64,
    /// HA: a backup publishes every table as standby.
    standby: bool,
    announce: u64,
    /// The XDP programs' maps (AF_XDP backend), kept in step with each
    /// table.
    steering: Option<Steering>,
    steer_error: Option<String>,
    /// Several workers: the fanout program that names the VIPs.
    fanout: Option<crate::io::fanout::Fanout>,
    fanout_error: Option<String>,
    /// The workers' wake-ups: an idle worker takes a new table at once.
    wakes: Vec<Arc<crate::host::sys::Wake>>,
}

impl Default for Publisher {
    fn default() -> Publisher {
        Publisher::new()
    }
}

impl Publisher {
    /// A publisher whose data plane starts with the empty table.
    pub fn new() -> Publisher {
        Publisher {
            shared: Arc::new(ArcSwap::from_pointee(Table::default())),
            generation: 0,
            standby: false,
            announce: 0,
            steering: None,
            steer_error: None,
            fanout: None,
            fanout_error: None,
            wakes: Vec::new(),
        }
    }

    /// Wakes these after each table.
    pub fn set_wakes(&mut self, wakes: Vec<Arc<crate::host::sys::Wake>>) {
        self.wakes = wakes;
    }

    /// What the data plane reads (give it to `Dataplane::new`).
    pub fn shared(&self) -> Arc<ArcSwap<Table>> {
        self.shared.clone()
    }

    /// Sets the HA role for this and later tables (publish to apply it).
    pub fn set_standby(&mut self, standby: bool) {
        self.standby = standby;
    }

    /// Keeps `s`'s maps in step with every table from now on.
    pub fn set_steering(&mut self, s: Steering) {
        self.steering = Some(s);
    }

    /// Several workers share the links through `f`, whose program follows
    /// the VIPs of each table.
    pub fn set_fanout(&mut self, f: crate::io::fanout::Fanout) {
        self.fanout = Some(f);
    }

    /// Detaches the XDP programs (a director handing over).
    pub fn release_steering(&mut self) {
        self.steering = None;
    }

    /// Asks for the VIPs' gratuitous ARPs again with the next table.
    pub fn announce(&mut self) {
        self.announce += 1;
    }

    /// Brings the XDP maps up to date with the current table and the
    /// host's addresses now (an address added to the director between
    /// tables).
    pub fn refresh_steering(&mut self) {
        let t = self.shared.load();
        self.steer(&t);
    }

    /// The kernel programs' tables for the new flows they schedule
    /// (`io/bpf/sched.rs`).
    fn schedule_in_kernel(&mut self, t: &Table) {
        if let Some(s) = &mut self.steering
            && let Err(e) = s.update_scheduling(t)
        {
            let e = e.to_string();
            if self.steer_error.as_ref() != Some(&e) {
                tracing::info!(
                    "the kernel programs' scheduling tables were not updated ({e}): \
                     new flows of the changed services come up to uvs"
                );
                self.steer_error = Some(e);
            }
        }
    }

    fn steer(&mut self, t: &Table) {
        if let Some(f) = &mut self.fanout {
            match f.update(t.vips(), t.vips6()).map_err(|e| e.to_string()) {
                Err(e) if self.fanout_error.as_ref() != Some(&e) => {
                    tracing::warn!(
                        "the workers' fanout program was not updated ({e}): \
                         a new VIP's NAT replies may reach a worker without their connection"
                    );
                    self.fanout_error = Some(e);
                }
                Err(_) => {}
                Ok(()) => self.fanout_error = None,
            }
        }
        if let Some(s) = &mut self.steering {
            let locals = crate::host::sys::local_addrs();
            match s.update(t, &locals).map_err(|e| e.to_string()) {
                // Once per failure, not at every retry.
                Err(e) if self.steer_error.as_ref() != Some(&e) => {
                    tracing::info!(
                        "XDP maps not updated ({e}): the new services' frames come through the packet socket"
                    );
                    self.steer_error = Some(e);
                }
                Err(_) => {}
                Ok(()) => self.steer_error = None,
            }
        }
    }

    /// Publishes `model` with `routes` as the next table.
    pub fn publish(&mut self, model: &Model, routes: &[LinkRoute]) {
        self.generation += 1;
        let t = model
            .table(self.generation)
            .with_routes(routes.to_vec())
            .with_ha(self.standby, self.announce);
        // Maps first: a frame they steer finds its table, or at worst the
        // previous one, as through the packet socket.
        self.steer(&t);
        let t = Arc::new(t);
        self.shared.store(t.clone());
        // The programs' scheduling tables after: a flow they schedule
        // names a real server of a table the data plane can see.
        self.schedule_in_kernel(&t);
        for w in &self.wakes {
            w.wake();
        }
    }
}
