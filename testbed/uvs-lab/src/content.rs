//! The content of uploads and downloads: reproducible bytes and the hash
//! that tells an intact transfer from a damaged one.

/// FNV-1a, 64 bit: enough to tell an intact upload from a damaged one.
pub fn fnv(h: &mut u64, data: &[u8]) {
    for b in data {
        *h ^= u64::from(*b);
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}
pub const FNV_INIT: u64 = 0xcbf2_9ce4_8422_2325;

/// Fills `buf` with xorshift output: incompressible, reproducible content.
pub fn fill(x: &mut u32, buf: &mut [u8]) {
    for b in buf {
        *x ^= *x << 13;
        *x ^= *x >> 17;
        *x ^= *x << 5;
        *b = *x as u8;
    }
}

/// The hash of `n` bytes of `fill` content from `seed`.
pub fn content_hash(seed: u32, n: usize) -> u64 {
    let (mut x, mut h, mut left) = (seed, FNV_INIT, n);
    let mut buf = vec![0u8; 65536];
    while left > 0 {
        let k = left.min(buf.len());
        fill(&mut x, &mut buf[..k]);
        fnv(&mut h, &buf[..k]);
        left -= k;
    }
    h
}

pub const SEED: u32 = 0x1234_5678;
