//! The ports of a TCP or UDP header, whichever it is: NAT rewrites them
//! in packets and in the packets ICMP errors quote.

use super::Result;

/// The bytes the view needs.
pub const LEN: usize = 8;

view! {
    /// The two port fields TCP and UDP share at the start of their
    /// headers. The view asks for the first eight bytes: all that an ICMP
    /// error is sure to quote of the offending packet (RFC 792).
    Ports,
    len = LEN
}

port_fields!(Ports);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_eight_bytes_and_rewrites_both_ends() {
        assert!(Ports::new_checked(&[0u8; 7][..]).is_err());
        let mut b = [0u8; 8];
        let mut p = Ports::new_checked(&mut b[..]).unwrap();
        p.set_src_port(40000);
        p.set_dst_port(80);
        assert_eq!((p.src_port(), p.dst_port()), (40000, 80));
        assert_eq!(&b[..4], &[0x9c, 0x40, 0, 80]);
    }
}
