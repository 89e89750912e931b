//! Segmentation and checksum completion checked against etherparse, an
//! independent packet implementation.

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use uvs::dataplane::gso::segment_tcp;

fn super_frame(payload_len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 7 + 3) as u8).collect();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 18, 0, 10], [198, 18, 0, 100], 64)
        .tcp(40000, 80, 1000, 64000)
        .ack(5)
        .psh()
        .fin();
    let mut out = Vec::new();
    b.write(&mut out, &payload).unwrap();
    out
}

#[test]
fn segments_are_valid_and_reassemble() {
    let frame = super_frame(20000);
    let mut scratch = vec![0u8; 70000];
    let mut segs: Vec<Vec<u8>> = Vec::new();
    let n = segment_tcp(&frame, 1448, &mut scratch, |s| segs.push(s.to_vec())).expect("segmenting");
    assert_eq!(n, 20000usize.div_ceil(1448));
    let mut data = Vec::new();
    let mut expect_seq = 1000u32;
    for (i, s) in segs.iter().enumerate() {
        let p = SlicedPacket::from_ethernet(s).unwrap();
        let ip = match p.net.unwrap() {
            etherparse::NetSlice::Ipv4(ip) => ip,
            _ => panic!("not ipv4"),
        };
        let h = ip.header();
        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        let TransportSlice::Tcp(t) = p.transport.unwrap() else {
            panic!("not tcp")
        };
        let th = t.to_header();
        let want = th.calc_checksum_ipv4(&h.to_header(), t.payload()).unwrap();
        assert_eq!(th.checksum, want, "segment {i} checksum");
        assert_eq!(t.sequence_number(), expect_seq);
        expect_seq = expect_seq.wrapping_add(t.payload().len() as u32);
        let last = i + 1 == segs.len();
        assert_eq!(t.fin(), last);
        assert_eq!(t.psh(), last);
        assert!(t.ack());
        assert!(s.len() <= 14 + 1500);
        data.extend_from_slice(t.payload());
    }
    let orig = SlicedPacket::from_ethernet(&frame).unwrap();
    let TransportSlice::Tcp(t) = orig.transport.unwrap() else {
        panic!()
    };
    assert_eq!(data, t.payload());
}

#[test]
fn partial_checksum_is_completed() {
    // Build a frame, then replace the TCP checksum with the pseudo-header
    // sum only, as a CHECKSUM_PARTIAL sender leaves it.
    let mut frame = super_frame(100);
    let l4 = 14 + 20;
    let len = (frame.len() - l4) as u32;
    let ps = uvs::wire::checksum::fold(uvs::wire::checksum::pseudo_header(
        [198, 18, 0, 10].into(),
        [198, 18, 0, 100].into(),
        6,
        len,
    ));
    let good = [frame[l4 + 16], frame[l4 + 17]];
    frame[l4 + 16..l4 + 18].copy_from_slice(&ps.to_be_bytes());
    assert!(uvs::dataplane::egress::complete_checksum(
        &mut frame, l4, 16
    ));
    assert_eq!([frame[l4 + 16], frame[l4 + 17]], good);
    // Offsets pointing outside the frame are refused, not a panic.
    assert!(!uvs::dataplane::egress::complete_checksum(
        &mut frame, l4, 5000
    ));
    assert!(!uvs::dataplane::egress::complete_checksum(
        &mut frame, 9000, 0
    ));
}
