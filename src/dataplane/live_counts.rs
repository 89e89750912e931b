//! The kernel program's frames in the counters while their flows live:
//! the program counts what it forwards to each DR and TUN real server
//! under uvs's id for it (map `real_counts`, per CPU), and about once a
//! second the data plane adds what was forwarded since the last read to
//! the server's and its service's counters, so `-Ln --stats`, `--rate`
//! and the metrics follow offloaded flows as they go rather than when
//! each is taken back. (A frame of a flow whose server has no entry is
//! counted in the flow instead and added at take-back, as before.)

use super::Dataplane;
use super::books::{Books, count_in_many};
use crate::io::PacketIo;
use crate::lvs::service::Forward;

impl Dataplane {
    /// Reads the program's counts of every DR and TUN real server (those
    /// of the table and those that left it but may still have flows in
    /// the program) and adds what is new to their counters.
    pub(super) fn fold_real_counts<I: PacketIo>(&mut self, io: &mut I) {
        if !self.offload {
            return;
        }
        let mut ids: Vec<u64> = self
            .table
            .services
            .iter()
            .flat_map(|s| &s.dests)
            .filter(|d| matches!(d.forward, Forward::Route | Forward::Tunnel))
            .map(|d| d.id)
            .chain(self.retired.ids())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let books = Books {
            table: &self.table,
            positions: &self.positions,
            retired: &self.retired,
        };
        let last = &mut self.real_counted;
        io.real_counts(&ids, &mut |id, packets, bytes| {
            let (p0, b0) = last.insert(id, (packets, bytes)).unwrap_or_default();
            // Totals below the last: the entry was made again from zero.
            let (dp, db) = match packets < p0 || bytes < b0 {
                true => (packets, bytes),
                false => (packets - p0, bytes - b0),
            };
            if dp | db != 0 {
                count_in_many(books.stats_of_id(id), dp, db);
            }
        });
        last.retain(|id, _| ids.binary_search(id).is_ok());
    }
}
