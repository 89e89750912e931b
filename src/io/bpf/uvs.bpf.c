// SPDX-License-Identifier: MIT OR Apache-2.0
// uvs's kernel programs, one object that both backends load (io/bpf/):
// the XDP program (uvs_steer) steers the director's own traffic (frames
// for a VIP, and NAT replies from a real server's port) to uvs's AF_XDP
// socket on the receive queue, and passes every other frame to the kernel
// untouched; the tc program (uvs_tc_forward, at the end) forwards
// offloaded flows for the AF_PACKET backends. IPv4 and IPv6 are steered
// and offloaded alike (an IPv6 flow by its fixed header only: a frame
// with extension headers goes to uvs). The structs the maps hold are in
// maps.h, mirrored in maps.rs.
// uvs fills the maps from each published table; a frame the maps do not
// claim still reaches uvs through its AF_PACKET socket, so a map that lags
// a table costs speed, never a connection.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "maps.h"

// The largest frame an AF_XDP socket frame holds (io/xdp/xsk.rs: 4 KiB
// frames, less the kernel's headroom).
#define MAX_FRAME 3584
// Ethernet, IPv4 with the most options, and TCP up to its flags.
#define HEADERS (14 + 60 + 14)

// The AF_XDP sockets, by receive queue.
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// Every VIP address (network order): all of its traffic is uvs's.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} vips SEC(".maps");

// NAT real servers, whose replies uvs translates back.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rs_key);
	__type(value, __u8);
} nat_servers SEC(".maps");

// The director's own addresses: traffic to them (a health check's reply
// from a real server, an operator's ssh) is the kernel's.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} locals SEC(".maps");

// The same three for IPv6: every VIP6 (16-byte keys), IPv6 NAT real
// servers, the director's own IPv6 addresses.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct in6_addr);
	__type(value, __u8);
} vips6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct rs6_key);
	__type(value, __u8);
} nat_servers6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct in6_addr);
	__type(value, __u8);
} locals6 SEC(".maps");

// An established DR (or IPv4 TUN) flow that uvs handed to the program
// (Katran's split), or one the program scheduled, by its client-side
// 5-tuple (maps.h).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow_key);
	__type(value, struct flow);
} flows SEC(".maps");

// The same for IPv6 flows, by their 5-tuple with 16-byte addresses.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow6_key);
	__type(value, struct flow);
} flows6 SEC(".maps");

// [0]: 1 while this director is the active one (a backup forwards
// nothing); [1]: 1 while the programs schedule new flows themselves
// (`--offload`, active). Set by uvs with each published table. [2]: the
// data plane's workers (sched.h: worker_of), set once they can read.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} fast SEC(".maps");

// [0]: frames the program forwarded itself (per CPU).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} forwarded SEC(".maps");

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

// The TCP or UDP checksum field of the segment at `l4` (its 8 or 18
// bytes checked by the caller), or -1 if it is cut short.
static __always_inline int checksum_field(__u8 proto, __u8 *l4, void *end)
{
	if (proto == IPPROTO_TCP) {
		if ((void *)(l4 + 18) > end)
			return -1;
		return bpf_ntohs(*(__u16 *)(l4 + 16));
	}
	if ((void *)(l4 + 8) > end)
		return -1;
	return bpf_ntohs(*(__u16 *)(l4 + 6));
}

// Whether a checksum field equals the folded pseudo-header sum `sum`:
// a local sender on a virtual link (veth, a VM's tap) can hand over
// CHECKSUM_PARTIAL frames whose checksum field holds only that sum,
// which XDP cannot tell apart, and such a frame must not leave as it is.
// uvs finishes it (io/xdp/meta.rs, unfinished_checksum); a finished
// checksum that happens to equal the sum (one in 65,536) only goes up to
// uvs too. A segment cut short counts as unfinished.
static __always_inline int unfinished(int field, __u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return field < 0 || field == (__u16)sum;
}

// The 16-bit words of a 32-bit word (host order), summed.
static __always_inline __u32 words(__u32 w)
{
	w = bpf_ntohl(w);
	return (w >> 16) + (w & 0xffff);
}

// Whether an IPv4 segment's checksum looks unfinished (above).
static __always_inline int partial_checksum(struct iphdr *ip, __u8 *l4, __u32 hl, void *end)
{
	__u32 len = bpf_ntohs(ip->tot_len);

	if (len < hl)
		return 1;
	return unfinished(checksum_field(ip->protocol, l4, end),
			  words(ip->saddr) + words(ip->daddr) + ip->protocol + (len - hl));
}

// Whether an IPv6 segment right after the fixed header has a checksum
// that looks unfinished (above): its pseudo-header holds both addresses,
// the upper layer's length and its protocol.
static __always_inline int partial_checksum6(struct ipv6hdr *ip6, __u8 *l4, void *end)
{
	__u32 sum = bpf_ntohs(ip6->payload_len) + ip6->nexthdr;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++)
		sum += words(ip6->saddr.in6_u.u6_addr32[i]) + words(ip6->daddr.in6_u.u6_addr32[i]);
	return unfinished(checksum_field(ip6->nexthdr, l4, end), sum);
}

// Element `i` of array map `fast` is set (a backup forwards nothing).
static __always_inline int fast_is(__u32 i)
{
	__u32 *on = bpf_map_lookup_elem(&fast, &i);

	return on && *on;
}

// `f` (found in flows or flows6), unless its periodic frame is due: that
// one goes up to uvs, so uvs's timer for the flow runs on.
static __always_inline struct flow *unless_due(struct flow *f)
{
	__u64 now;

	if (!f)
		return 0;
	// The coarse clock (the tick's, no clock read): the interval is
	// seconds long.
	now = bpf_ktime_get_coarse_ns();
	// Signed: uvs stamps up_ns with the precise clock, which the coarse
	// one trails by up to a tick.
	if ((__s64)(now - f->up_ns) >= (__s64)f->every_ns) {
		f->up_ns = now;
		return 0;
	}
	return f;
}

// Set by uvs as it loads the tc program for a link: 1 if the link is
// virtual (a veth, netkit: tunnel.h).
volatile const __u32 virtual_link = 0;

// Whether the tc program can wrap its IPv4 frame `skb` (header `ip`, the
// linear part ending at `end`) as tunnel.h's encapsulate does: not a
// super-frame, on a virtual link a finished checksum, and within the
// link's MTU once wrapped. No for the XDP program or IPv6 (0s). Asked
// only when the program schedules a flow to a TUN server, so that the
// flow's first frame leaves by the program.
static __always_inline int wrappable(struct __sk_buff *skb, struct iphdr *ip, void *end)
{
	__u32 hl, mtu = 0;

	if (!skb || !ip || skb->gso_size)
		return 0;
	hl = ip->ihl * 4;
	if (virtual_link && partial_checksum(ip, (__u8 *)ip + hl, hl, end))
		return 0;
	return bpf_check_mtu(skb, 0, &mtu, sizeof(struct iphdr), 0) == BPF_MTU_CHK_RET_SUCCESS;
}

#include "sched.h"

// The TCP flags of the segment at `l4` (0 for UDP), or -1 if the frame
// must go to uvs: another protocol (an IPv6 extension header among them),
// a segment cut short.
static __always_inline int l4_flags(__u8 proto, __u8 *l4, void *end)
{
	if (proto == IPPROTO_TCP)
		return (void *)(l4 + 14) <= end ? l4[13] : -1;
	return proto == IPPROTO_UDP && (void *)(l4 + 8) <= end ? 0 : -1;
}

// The flow a frame to a VIP belongs to, if the program forwards it: one
// that uvs handed over or that the program scheduled, or a new one it
// schedules now (a TCP SYN, or a UDP datagram, of a service in
// `services`). The client's FIN of an established flow and its RST are
// reported and forwarded (report_close). To uvs go: SYN of known flows,
// the FIN of one not reported established, a TTL about to
// run out, fragments, the flow's periodic frame (its uvs timer runs on),
// whatever the program cannot schedule, and a TUN flow's frames unless
// `tun` (the tc program, an IPv4 frame: the XDP program leaves TUN to uvs;
// tunnel.h sends up the frames it cannot wrap, and a new flow goes to a
// TUN server only if its frame `skb`, header `ip`, can be). `*fresh`: the
// flow was scheduled at this frame, which uvs counts from the report (the
// flow's own counts start after it).
static __always_inline struct flow *forwarded_flow(void *map, void *fkey, int flags,
						    struct flow_event *tmpl, struct svc_key *sk,
						    __u32 caddr, struct ethhdr *eth, int tun,
						    struct __sk_buff *skb, struct iphdr *ip, void *end,
						    int *fresh)
{
	struct flow *f = bpf_map_lookup_elem(map, fkey);

	// A SYN that reuses a closing flow's tuple (a client's port again):
	// a new flow, scheduled below if the service is one the program
	// schedules (uvs ends the old entry as its own path would).
	if (f && f->state >= FLOW_CLOSING && (flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST)) == TCP_SYN) {
		bpf_map_delete_elem(map, fkey);
		f = 0;
	}
	if (f) {
		if (flags & TCP_SYN || (f->tun_daddr && !tun))
			return 0;
		if ((flags & (TCP_FIN | TCP_RST)) &&
		    !report_close(f, tmpl, eth, flags & TCP_RST, worker_of(caddr, tmpl)))
			return 0;
		f = unless_due(f);
		if (f && f->state == FLOW_SYN && (flags & TCP_ACK))
			report_established(f, tmpl, eth, sk, worker_of(caddr, tmpl));
		else if (f && f->state == FLOW_ONE) {
			if (real_left(f, map, fkey))
				return 0;
			report_seen(f, tmpl, eth, worker_of(caddr, tmpl));
		}
		return f;
	}
	// A new flow: a TCP one at its SYN only (anything else of an unknown
	// flow is uvs's to judge).
	if (tmpl->proto == IPPROTO_TCP && (flags & (TCP_SYN | TCP_ACK | TCP_FIN | TCP_RST)) != TCP_SYN)
		return 0;
	f = schedule(sk, caddr, bpf_ntohs(tmpl->sport), map, fkey, eth, tmpl,
		     tun && wrappable(skb, ip, end));
	*fresh = f != 0;
	return f;
}

// A frame's report template (`t`: its addresses, ports, protocol and TCP
// flags) and its service's key (`sk`), for addresses of `len` bytes (4:
// IPv4, the rest zero; 16: IPv6). Ports in network order.
static __always_inline void describe(struct flow_event *t, struct svc_key *sk, const void *saddr,
				     const void *daddr, int len, __u16 sport, __u16 dport,
				     __u8 proto, int flags)
{
	__builtin_memcpy(t->saddr, saddr, len);
	__builtin_memcpy(t->daddr, daddr, len);
	t->sport = sport;
	t->dport = dport;
	t->proto = proto;
	t->family = len == 4 ? 4 : 6;
	t->tcp_flags = flags;
	__builtin_memcpy(sk->addr, daddr, len);
	sk->port = dport;
	sk->proto = proto;
	sk->family = t->family;
}

// forwarded_flow for an IPv4 frame of `segs` frames on the wire and
// `bytes` IP bytes. `skb` 0: the XDP program's, which sees bytes only
// (the checksum state unknown: an unfinished one goes up) and leaves TUN
// flows to uvs; the tc program wraps a TUN flow's frame unless it cannot
// (tunnel.h: those go up).
static __always_inline struct flow *offloaded(struct ethhdr *eth, struct iphdr *ip, void *end,
					      struct __sk_buff *skb, __u64 segs, __u64 bytes,
					      int *fresh)
{
	__u32 hl = ip->ihl * 4;
	__u8 *l4 = (__u8 *)ip + hl;
	struct flow_key k = {};
	struct flow_event t = {};
	struct svc_key sk = {};
	int flags;

	if (!fast_is(0) || ip->ttl <= 1 || (ip->frag_off & bpf_htons(0x3fff)))
		return 0;
	if (hl < sizeof(*ip))
		return 0;
	flags = l4_flags(ip->protocol, l4, end);
	if (flags < 0)
		return 0;
	if (!skb && partial_checksum(ip, l4, hl, end))
		return 0;
	k.saddr = ip->saddr;
	k.daddr = ip->daddr;
	k.sport = *(__u16 *)l4;
	k.dport = *(__u16 *)(l4 + 2);
	k.proto = ip->protocol;
	describe(&t, &sk, &ip->saddr, &ip->daddr, 4, k.sport, k.dport, k.proto, flags);
	t.segs = segs;
	t.bytes = bytes;
	return forwarded_flow(&flows, &k, flags, &t, &sk, bpf_ntohl(ip->saddr), eth, skb != 0, skb,
			      ip, end, fresh);
}

// The same for IPv6, by the fixed header only: a frame with extension
// headers (a fragment among them) or a hop limit about to run out goes
// to uvs. No TUN: the programs' encapsulation is IPv4-in-IPv4 only.
static __always_inline struct flow *offloaded6(struct ethhdr *eth, struct ipv6hdr *ip6, void *end,
					       int xdp, __u64 segs, __u64 bytes, int *fresh)
{
	__u8 *l4 = (__u8 *)(ip6 + 1);
	struct flow6_key k = {};
	struct flow_event t = {};
	struct svc_key sk = {};
	__u32 caddr = 0;
	int flags, i;

	if ((void *)(ip6 + 1) > end)
		return 0;
	if (!fast_is(0) || ip6->hop_limit <= 1)
		return 0;
	flags = l4_flags(ip6->nexthdr, l4, end);
	if (flags < 0)
		return 0;
	if (xdp && partial_checksum6(ip6, l4, end))
		return 0;
	__builtin_memcpy(k.saddr, &ip6->saddr, sizeof(k.saddr));
	__builtin_memcpy(k.daddr, &ip6->daddr, sizeof(k.daddr));
	k.sport = *(__u16 *)l4;
	k.dport = *(__u16 *)(l4 + 2);
	k.proto = ip6->nexthdr;
	describe(&t, &sk, &ip6->saddr, &ip6->daddr, 16, k.sport, k.dport, k.proto, flags);
	t.segs = segs;
	t.bytes = bytes;
#pragma unroll
	for (i = 0; i < 4; i++)
		caddr ^= bpf_ntohl(ip6->saddr.in6_u.u6_addr32[i]);
	return forwarded_flow(&flows6, &k, flags, &t, &sk, caddr, eth, 0, 0, 0, 0, fresh);
}

// What the program forwarded to each real server, per CPU, by uvs's id
// (struct real_count, ids from 1): uvs writes an entry for each DR and
// TUN server on the link (the program makes one for a server whose entry
// uvs has not written yet) and reads them about once a second into the
// service's and server's counters, so `--stats` and the metrics follow
// offloaded flows while they live. A frame whose server has no id (0), or
// whose entry cannot be made (the map full), is counted in its flow
// instead, added when uvs takes the flow back.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct real_count);
} real_counts SEC(".maps");

// Readdresses a frame of flow `f` to its real server (its MAC, ours as
// the source) and counts it: `segs` frames (a super-frame is several on
// the wire) of `bytes` IP bytes, in its server's real_counts (else the
// flow's own counts) unless `fresh` (the first frame of a flow the program
// scheduled: uvs counts it from the report). The caller lowers the TTL or
// hop limit.
static __always_inline void readdress(struct flow *f, struct ethhdr *eth, __u64 segs, __u64 bytes,
				      int fresh)
{
	struct real_count *rc;
	__u32 zero = 0;
	__u64 *n;

	__builtin_memcpy(eth->h_dest, f->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, f->smac, ETH_ALEN);
	if (!fresh) {
		rc = bpf_map_lookup_elem(&real_counts, &f->id);
		if (!rc && f->id) {
			struct real_count zero = {};

			bpf_map_update_elem(&real_counts, &f->id, &zero, BPF_NOEXIST);
			rc = bpf_map_lookup_elem(&real_counts, &f->id);
		}
		if (rc) {
			rc->packets += segs;
			rc->bytes += bytes;
		} else {
			__sync_fetch_and_add(&f->packets, segs);
			__sync_fetch_and_add(&f->bytes, bytes);
		}
	}
	n = bpf_map_lookup_elem(&forwarded, &zero);
	if (n)
		*n += segs;
}

// An IPv4 frame of flow `f`, as uvs's DR sends it: readdressed, TTL - 1
// with the header checksum patched (RFC 1624).
static __always_inline void rewrite(struct flow *f, struct ethhdr *eth, struct iphdr *ip,
				    __u64 segs, __u64 bytes, int fresh)
{
	__u32 sum = (__u32)ip->check + (__u32)bpf_htons(0x0100);

	ip->check = (__u16)(sum + (sum >> 16));
	ip->ttl--;
	readdress(f, eth, segs, bytes, fresh);
}

// An IPv6 frame of flow `f`: readdressed, hop limit - 1 (IPv6 has no
// header checksum).
static __always_inline void rewrite6(struct flow *f, struct ethhdr *eth, struct ipv6hdr *ip6,
				     __u64 segs, __u64 bytes, int fresh)
{
	ip6->hop_limit--;
	readdress(f, eth, segs, bytes, fresh);
}

// A frame of an established DR flow goes straight back out of the link it
// came in on (XDP_TX); any other goes on to the steering below.
static __always_inline int forward_flow(struct ethhdr *eth, struct iphdr *ip, void *end)
{
	__u64 bytes = (__u64)(end - (void *)ip);
	int fresh = 0;
	struct flow *f = offloaded(eth, ip, end, 0, 1, bytes, &fresh);

	if (!f)
		return -1;
	rewrite(f, eth, ip, 1, bytes, fresh);
	return XDP_TX;
}

// The same for an IPv6 frame.
static __always_inline int forward_flow6(struct ethhdr *eth, struct ipv6hdr *ip6, void *end)
{
	__u64 bytes = (__u64)(end - (void *)ip6);
	int fresh = 0;
	struct flow *f = offloaded6(eth, ip6, end, 1, 1, bytes, &fresh);

	if (!f)
		return -1;
	rewrite6(f, eth, ip6, 1, bytes, fresh);
	return XDP_TX;
}

// Whether an IPv6 frame (its fixed header checked) not to a VIP6 is
// uvs's: a TCP or UDP frame from an IPv6 NAT real server's address and
// port (the upper layer right after the fixed header: a reply with
// extension headers comes through the packet socket) that is not for one
// of the director's own addresses.
static __always_inline int nat_reply6(struct ipv6hdr *ip6, void *end)
{
	struct rs6_key k = {};

	if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP)
		return 0;
	if ((void *)(ip6 + 1) + 2 > end)
		return 0;
	__builtin_memcpy(k.addr, &ip6->saddr, sizeof(k.addr));
	k.port = *(__u16 *)(ip6 + 1);
	k.proto = ip6->nexthdr;
	return bpf_map_lookup_elem(&nat_servers6, &k) && !bpf_map_lookup_elem(&locals6, &ip6->daddr);
}

SEC("xdp")
int uvs_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 hl;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	// A super-frame (generic XDP sees them whole) does not fit a socket
	// frame: the packet socket takes it, and sends it on whole.
	if (data + MAX_FRAME < end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		if (bpf_map_lookup_elem(&vips6, &ip6->daddr)) {
			int r = forward_flow6(eth, ip6, end);
			if (r >= 0)
				return r;
			goto steer;
		}
		if (!nat_reply6(ip6, end))
			return XDP_PASS;
		goto steer;
	}
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	if (bpf_map_lookup_elem(&vips, &ip->daddr)) {
		int r = forward_flow(eth, ip, end);
		if (r >= 0)
			return r;
		goto steer;
	}
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	// Only a first fragment carries the ports.
	if (ip->frag_off & bpf_htons(0x1fff))
		return XDP_PASS;
	hl = ip->ihl * 4;
	if (hl < sizeof(*ip) || (void *)ip + hl + 4 > end)
		return XDP_PASS;
	{
		struct rs_key k = {
			.addr = ip->saddr,
			.port = *(__u16 *)((void *)ip + hl),
			.proto = ip->protocol,
		};
		if (!bpf_map_lookup_elem(&nat_servers, &k) ||
		    bpf_map_lookup_elem(&locals, &ip->daddr))
			return XDP_PASS;
	}
steer:
	// No socket on this queue: the kernel, and so uvs's packet socket.
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

// Set by uvs as it loads the tc program for a link: 1 if the link is a
// veth (or netkit) whose peer is in another namespace (a container's
// link). A frame then goes straight into the peer's receive path
// (bpf_redirect_peer), as XDP_TX hands it to the peer for the XDP
// program: no transmit on this link, no second trip through a backlog
// queue. 0: out of this link's transmit (bpf_redirect), as on a NIC.
volatile const __u32 to_peer = 0;

#include "tunnel.h"

// The same split for the AF_PACKET backends (`--io packet --offload`),
// in the tc ingress hook: a DR flow's frame (or an IPv4 TUN flow's,
// wrapped: tunnel.h) leaves by the link it came in on without reaching uvs's packet sockets, which are
// bound to IPv4 and IPv6 and so see a frame only after this hook passed
// it on. A GSO super-frame (a local sender's, or GRO's) goes out whole:
// XDP would turn the sender's segmentation offload off on a veth, tc
// does not. Every other frame goes on as if the program were not there.
SEC("classifier")
int uvs_tc_forward(struct __sk_buff *skb)
{
	void *data, *end;
	struct ethhdr *eth;
	struct flow *f;
	int fresh = 0;
	__u64 segs;
	__u32 want;

	if (skb->protocol != bpf_htons(ETH_P_IP) && skb->protocol != bpf_htons(ETH_P_IPV6))
		return TC_ACT_OK;
	// The headers (IPv4 with options or IPv6's fixed one, the TCP flags)
	// in the linear part; pulled only when they are not (a helper call
	// per frame otherwise). That part is ours to write: for a program
	// that writes, the kernel unclones a frame a tap holds a clone of
	// before the program runs.
	want = skb->len < HEADERS ? skb->len : HEADERS;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	if (data + want > end) {
		if (bpf_skb_pull_data(skb, want) < 0)
			return TC_ACT_OK;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
	}
	eth = data;
	if ((void *)(eth + 1) > end)
		return TC_ACT_OK;
	segs = skb->gso_segs ? skb->gso_segs : 1;
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		f = offloaded6(eth, ip6, end, 0, segs, skb->len - sizeof(*eth), &fresh);
		if (!f)
			return TC_ACT_OK;
		rewrite6(f, eth, ip6, segs, skb->len - sizeof(*eth), fresh);
	} else {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return TC_ACT_OK;
		f = offloaded(eth, ip, end, skb, segs, skb->len - sizeof(*eth), &fresh);
		if (!f)
			return TC_ACT_OK;
		if (f->tun_daddr) {
			int r = encapsulate(skb, f, ip, end, segs, fresh);

			if (r)
				return r < 0 ? TC_ACT_OK : r;
		} else {
			rewrite(f, eth, ip, segs, skb->len - sizeof(*eth), fresh);
		}
	}
	if (to_peer)
		return bpf_redirect_peer(skb->ifindex, 0);
	return bpf_redirect(skb->ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
