//! The address of either family as connections use it: the [`Addr`]
//! trait, implemented for [`Ipv4Addr`] and [`Ipv6Addr`], is what the
//! connection key, the entry and the data plane's table are generic over,
//! so each family gets its own table, monomorphic, with entries no wider
//! than its addresses need (docs/ipv6.md). It holds only what those
//! need: the conversions from and to [`IpAddr`], the client networks of
//! persistence, the firewall mark a mark service's template carries in
//! its virtual address, and the digest's word.

use std::fmt::{Debug, Display};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or an IPv6 address, as a connection's key and entry hold it.
pub trait Addr:
    Copy + Eq + Hash + Ord + Debug + Display + Into<IpAddr> + Send + Sync + 'static
{
    /// "IPv4" or "IPv6", for messages.
    const FAMILY: &'static str;
    /// `0.0.0.0`, `::`.
    const UNSPECIFIED: Self;
    /// Every bit set: the mask that keeps a whole address (persistence's
    /// default granularity, ipvsadm's /32 and /128).
    const ALL_ONES: Self;

    /// The address if `ip` is of this family.
    fn from_ip(ip: IpAddr) -> Option<Self>;

    /// The bits of `self` that are set in `mask` too: a client's network
    /// under a persistence netmask (IPVS's `ip_vs_addr_set` with
    /// `svc->netmask`).
    fn masked(self, mask: Self) -> Self;

    /// The mask of a prefix of `len` bits (longer than the address: all
    /// of it). ipvsadm's `-M` gives an IPv6 service's netmask this way.
    fn prefix_mask(len: u8) -> Self;

    /// The virtual address of a firewall-mark service's persistence
    /// template: IPVS puts the mark in the address's first 32 bits
    /// (`nf_inet_addr.ip`, in network order), the rest zero.
    fn from_mark(mark: u32) -> Self;

    /// The mark [`from_mark`](Addr::from_mark) put in this address;
    /// `None` if it is not of that form (IPv6 bits past the first 32).
    fn mark(self) -> Option<u32>;

    /// Feeds `a` and `b` (a key's two addresses) to `h` as fixed-width
    /// numbers (`lvs::conn::hash_tuple`).
    fn hash_pair<H: Hasher>(a: Self, b: Self, h: &mut H);

    /// 32 bits for the table's digest (`lvs::sync::digest_term`): the
    /// IPv4 address itself, an IPv6 address folded by a fixed mix.
    fn digest_word(self) -> u32;
}

/// What both families' impls write alike, over their bits (`u32`,
/// `u128`) and their `IpAddr` variant: the constants, the conversion from
/// `IpAddr`, masks.
macro_rules! by_bits {
    ($family:literal, $variant:ident, $bits:ty) => {
        const FAMILY: &'static str = $family;
        const UNSPECIFIED: Self = Self::from_bits(0);
        const ALL_ONES: Self = Self::from_bits(<$bits>::MAX);

        #[inline]
        fn from_ip(ip: IpAddr) -> Option<Self> {
            match ip {
                IpAddr::$variant(a) => Some(a),
                _ => None,
            }
        }

        #[inline]
        fn masked(self, mask: Self) -> Self {
            Self::from_bits(self.to_bits() & mask.to_bits())
        }

        #[inline]
        fn prefix_mask(len: u8) -> Self {
            let width = <$bits>::BITS;
            let keep = u32::from(len).min(width);
            Self::from_bits(<$bits>::MAX.checked_shl(width - keep).unwrap_or(0))
        }
    };
}

impl Addr for Ipv4Addr {
    by_bits!("IPv4", V4, u32);

    #[inline]
    fn from_mark(mark: u32) -> Self {
        Ipv4Addr::from_bits(mark)
    }

    #[inline]
    fn mark(self) -> Option<u32> {
        Some(self.to_bits())
    }

    #[inline]
    fn hash_pair<H: Hasher>(a: Self, b: Self, h: &mut H) {
        h.write_u64((u64::from(a.to_bits()) << 32) | u64::from(b.to_bits()));
    }

    #[inline]
    fn digest_word(self) -> u32 {
        self.to_bits()
    }
}

impl Addr for Ipv6Addr {
    by_bits!("IPv6", V6, u128);

    #[inline]
    fn from_mark(mark: u32) -> Self {
        Ipv6Addr::from_bits(u128::from(mark) << 96)
    }

    #[inline]
    fn mark(self) -> Option<u32> {
        let b = self.to_bits();
        (b << 32 == 0).then_some((b >> 96) as u32)
    }

    #[inline]
    fn hash_pair<H: Hasher>(a: Self, b: Self, h: &mut H) {
        h.write_u128(a.to_bits());
        h.write_u128(b.to_bits());
    }

    #[inline]
    fn digest_word(self) -> u32 {
        use super::splitmix as mix;
        let b = self.to_bits();
        (mix((b >> 64) as u64 ^ mix(b as u64)) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_masks_keep_the_networks_bits() {
        assert_eq!(Ipv4Addr::prefix_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(Ipv4Addr::prefix_mask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(Ipv4Addr::prefix_mask(32), Ipv4Addr::ALL_ONES);
        assert_eq!(Ipv4Addr::prefix_mask(99), Ipv4Addr::ALL_ONES);
        let a = Ipv4Addr::new(198, 19, 7, 9);
        assert_eq!(
            a.masked(Ipv4Addr::new(255, 255, 0, 255)),
            Ipv4Addr::new(198, 19, 0, 9),
            "a netmask need not be a prefix, as ipvsadm's -M need not"
        );
        let c: Ipv6Addr = "2001:2:0:1:aa:bb:cc:dd".parse().unwrap();
        let m64 = Ipv6Addr::prefix_mask(64);
        assert_eq!(m64, "ffff:ffff:ffff:ffff::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(c.masked(m64), "2001:2:0:1::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(Ipv6Addr::prefix_mask(0), Ipv6Addr::UNSPECIFIED);
        assert_eq!(Ipv6Addr::prefix_mask(128), Ipv6Addr::ALL_ONES);
        assert_eq!(c.masked(Ipv6Addr::ALL_ONES), c);
    }

    #[test]
    fn a_mark_goes_in_the_first_32_bits_and_comes_back() {
        assert_eq!(Ipv4Addr::from_mark(100), Ipv4Addr::new(0, 0, 0, 100));
        let v6 = Ipv6Addr::from_mark(0x0102_0304);
        assert_eq!(v6, "102:304::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v6.mark(), Some(0x0102_0304));
        assert_eq!(Ipv4Addr::new(1, 2, 3, 4).mark(), Some(0x0102_0304));
        assert_eq!("102:304::1".parse::<Ipv6Addr>().unwrap().mark(), None);
    }

    #[test]
    fn only_the_familys_addresses_convert() {
        let v4 = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
        let v6: IpAddr = "2001:2::1".parse().unwrap();
        assert_eq!(Ipv4Addr::from_ip(v4).map(IpAddr::from), Some(v4));
        assert_eq!(Ipv4Addr::from_ip(v6), None);
        assert_eq!(Ipv6Addr::from_ip(v6).map(IpAddr::from), Some(v6));
        assert_eq!(Ipv6Addr::from_ip(v4), None);
        // A v4-mapped address is IPv6's, not IPv4's.
        let mapped = IpAddr::V6(Ipv4Addr::new(198, 18, 0, 1).to_ipv6_mapped());
        assert_eq!(Ipv4Addr::from_ip(mapped), None);
    }

    #[test]
    fn digest_words_are_the_ipv4_address_and_an_ipv6_fold() {
        assert_eq!(Ipv4Addr::new(1, 2, 3, 4).digest_word(), 0x0102_0304);
        let a: Ipv6Addr = "2001:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:3::1".parse().unwrap();
        assert_ne!(a.digest_word(), b.digest_word());
        assert_eq!(a.digest_word(), a.digest_word());
    }
}
