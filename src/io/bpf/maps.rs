//! The Rust mirrors of the structs the kernel programs keep in their maps
//! (maps.h). Each is declared through [`mirror!`], which checks it at
//! build time against the layout clang gives the C struct (build.rs reads
//! it from layout.c): the size, every field's offset and size, the number
//! of fields, and that the compiler added no padding (aya copies the bytes
//! whole). A field that moves or changes on either side stops the build.

#[cfg(uvs_xdp)]
mod layout {
    include!(concat!(env!("OUT_DIR"), "/layout.rs"));
}

/// A `#[repr(C)]` struct that mirrors C struct `$c` of maps.h, plain
/// bytes for aya, with its layout checked against the C one.
macro_rules! mirror {
    (
        $(#[$m:meta])*
        $vis:vis struct $name:ident = $c:ident {
            $($(#[$fm:meta])* $fv:vis $f:ident: $t:ty,)*
        }
    ) => {
        $(#[$m])*
        #[repr(C)]
        $vis struct $name {
            $($(#[$fm])* $fv $f: $t,)*
        }

        // SAFETY: fixed-size integer and byte-array fields with no padding
        // of the compiler's (checked below), so every byte is initialised
        // and any bit pattern is a valid value.
        unsafe impl aya::Pod for $name {}

        const _: () = {
            assert!(
                0 $(+ size_of::<$t>())* == size_of::<$name>(),
                concat!(stringify!($name), " has padding: aya would copy uninitialised bytes"),
            );
            #[cfg(uvs_xdp)]
            {
                use layout::$c as c;
                assert!(
                    size_of::<$name>() == c::SIZE,
                    concat!(stringify!($name), " is not the size of struct ", stringify!($c)),
                );
                assert!(
                    [$(stringify!($f)),*].len() == c::FIELDS,
                    concat!(stringify!($name), " and struct ", stringify!($c), " differ in fields"),
                );
                $(assert!(
                    core::mem::offset_of!($name, $f) == c::$f[0] && size_of::<$t>() == c::$f[1],
                    concat!(
                        stringify!($name), ".", stringify!($f), " is not where struct ",
                        stringify!($c), " has it, or not its size",
                    ),
                );)*
            }
        };
    };
}

mirror! {
    /// The key of `nat_servers`: a NAT real server's address, port and
    /// protocol, as the program reads them (network order).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub struct RsKey = rs_key {
        pub addr: [u8; 4],
        pub port: [u8; 2],
        pub proto: u8,
        pub pad: u8,
    }
}

mirror! {
    /// The key of `nat_servers6`: an IPv6 NAT real server's address, port
    /// and protocol (network order).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Rs6Key = rs6_key {
        pub addr: [u8; 16],
        pub port: [u8; 2],
        pub proto: u8,
        pub pad: u8,
    }
}

mirror! {
    /// The key of `flows`: an offloaded flow's client-side 5-tuple
    /// (network order).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FlowKey = flow_key {
        pub saddr: [u8; 4],
        pub daddr: [u8; 4],
        pub sport: [u8; 2],
        pub dport: [u8; 2],
        pub proto: u8,
        pub pad: [u8; 3],
    }
}

mirror! {
    /// The key of `flows6`: an offloaded IPv6 flow's client-side 5-tuple
    /// (network order).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Flow6Key = flow6_key {
        pub saddr: [u8; 16],
        pub daddr: [u8; 16],
        pub sport: [u8; 2],
        pub dport: [u8; 2],
        pub proto: u8,
        pub pad: [u8; 3],
    }
}

mirror! {
    /// The value of `flows` and `flows6`: the next hop's MACs, for TUN the
    /// outer header's addresses (tun_daddr zero: DR), what the program
    /// forwarded, and when a frame last went up to uvs and how often one
    /// does.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct FlowValue = flow {
        pub dmac: [u8; 6],
        pub smac: [u8; 6],
        pub state: u8,
        pub pad: [u8; 3],
        pub tun_saddr: [u8; 4],
        pub tun_daddr: [u8; 4],
        pub packets: u64,
        pub bytes: u64,
        pub up_ns: u64,
        pub every_ns: u64,
        /// uvs's id of its real server (real_counts' key).
        pub id: u64,
    }
}

mirror! {
    /// The key of `services`: a virtual service whose new flows the
    /// programs schedule (network order; an IPv4 address in the first four
    /// bytes).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub struct SvcKey = svc_key {
        pub addr: [u8; 16],
        pub port: [u8; 2],
        pub proto: u8,
        pub family: u8,
    }
}

mirror! {
    /// The value of `services`: its slots in `slots`, and how a new flow
    /// picks one.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Svc = svc {
        pub index: u32,
        pub first: u32,
        pub count: u32,
        pub kind: u8,
        pub port: u8,
        pub pad: [u8; 2],
        pub every_ns: u64,
        pub est_every_ns: u64,
    }
}

mirror! {
    /// The value of `reals`: a DR or TUN real server on this link, its
    /// (next hop's) MAC and ours, the outer header's addresses for TUN
    /// (zero for DR), and uvs's id for it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Real = real {
        pub dmac: [u8; 6],
        pub smac: [u8; 6],
        pub pad: u32,
        pub tun_saddr: [u8; 4],
        pub tun_daddr: [u8; 4],
        pub id: u64,
    }
}

mirror! {
    /// What the programs tell uvs through `events`: a flow they scheduled,
    /// or one of theirs that its client's ACK established.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FlowEvent = flow_event {
        pub saddr: [u8; 16],
        pub daddr: [u8; 16],
        pub sport: [u8; 2],
        pub dport: [u8; 2],
        pub proto: u8,
        pub family: u8,
        pub what: u8,
        pub tcp_flags: u8,
        pub cmac: [u8; 6],
        pub segs: u16,
        pub id: u64,
        pub bytes: u32,
        pub pad: u32,
    }
}

mirror! {
    /// A value of `real_counts` (per CPU): what the program forwarded to
    /// one real server.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct RealCount = real_count {
        pub packets: u64,
        pub bytes: u64,
    }
}

/// svc.kind (maps.h).
pub const SCHED_SH: u8 = 1;
pub const SCHED_MH: u8 = 2;
pub const SCHED_SEQ: u8 = 3;
/// A slot with no real server the program can send to.
pub const NO_REAL: u32 = u32::MAX;
/// flow.state: the program reported the client's FIN (and, at
/// FLOW_CLOSING + 1, an RST); a SYN that reuses the tuple is a new flow.
pub const FLOW_CLOSING: u8 = 3;
/// flow_event.what.
pub const EVENT_NEW: u8 = 1;
pub const EVENT_ESTABLISHED: u8 = 2;
pub const EVENT_SEEN: u8 = 3;
pub const EVENT_CLOSE: u8 = 4;

/// An offloaded-flow map by key `K`: `flows` by [`FlowKey`], `flows6`
/// by [`Flow6Key`].
pub type FlowMap<K = FlowKey> = aya::maps::HashMap<aya::maps::MapData, K, FlowValue>;
/// `real_counts`: what the program forwarded to each real server, by
/// uvs's id, per CPU.
pub type RealCounts = aya::maps::PerCpuHashMap<aya::maps::MapData, u64, RealCount>;
/// `forwarded`: frames the program forwarded, per CPU.
pub type Forwarded = aya::maps::PerCpuArray<aya::maps::MapData, u64>;
