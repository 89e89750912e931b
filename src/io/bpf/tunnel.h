// SPDX-License-Identifier: MIT OR Apache-2.0
// TUN in the tc program (included by uvs.bpf.c after `rewrite`): an IPv4
// frame of a TUN flow leaves wrapped in an outer IPv4 header as uvs's own
// TUN path writes it (src/wire/ipip.rs, after Linux's ip_vs_tunnel_xmit):
// from the director's tunnel source to the real server, protocol 4, TTL
// and DF copied from the inner header after the director's hop, TOS the
// inner one with CE made ECT(0), id 0 with DF (a random one without: the
// program keeps no counter), checksum computed. The room comes from
// bpf_skb_adjust_room as an L3 encapsulation (the skb knows its inner
// headers, for a device's checksum offload). Up to uvs, untouched, which
// wraps them itself (tunnel.rs) go:
// - a frame that would not fit the link's MTU once wrapped: uvs answers
//   as for its own (fragmentation needed with DF, outer fragments
//   without);
// - a GSO super-frame: uvs cuts it into wrapped segments (the kernel's
//   IP-in-IP segmentation is not used: a veth hands a super-frame whole to
//   the next namespace, where a decapsulator reading a raw socket, as
//   `uvs decap` does, gets one packet larger than the link);
// - on a virtual link, a frame whose checksum looks unfinished: a local
//   sender's frame on a veth keeps its checksum unfinished up to the
//   receiver, whose kernel trusts it, but a decapsulator that reads the
//   inner packet sees it wrong; uvs finishes it. On a NIC the device (or
//   the kernel before it) finishes the wrapped frame's checksum.
#ifndef UVS_TUNNEL_H
#define UVS_TUNNEL_H

#define IP_DF 0x4000

// The checksum of an IPv4 header without options.
static __always_inline __u16 ip_checksum(struct iphdr *h)
{
	__u16 *w = (__u16 *)h;
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*h) / 2); i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

// Wraps an IPv4 frame of TUN flow `f` (its header `in`, the linear part
// ending at `lin_end`; `segs` frames on the wire),
// readdresses it to the next hop and counts it (unless `fresh`: uvs counts
// a scheduled flow's first frame from its report): 0. -1: the frame goes up
// to uvs as it came (too big once wrapped, or no room could be made; a
// flow the program schedules is one whose first frame fits, so only an
// allocation that fails sends such a frame up, and uvs counts it twice);
// TC_ACT_SHOT: its headers are not where they must be after the room was
// made (not expected: they were pulled into the linear part).
static __always_inline int encapsulate(struct __sk_buff *skb, struct flow *f, struct iphdr *in,
				       void *lin_end, __u64 segs, int fresh)
{
	__u32 hl = in->ihl * 4;
	__u64 bytes = skb->len - sizeof(struct ethhdr);
	struct iphdr *outer, *ip;
	struct ethhdr *eth;
	void *data, *end;
	__u32 mtu = 0;
	__u16 len;
	__u8 ecn;

	if (skb->gso_size)
		return -1;
	if (virtual_link && partial_checksum(in, (__u8 *)in + hl, hl, lin_end))
		return -1;
	// The link's MTU now (the frame leaves by the link it came in on).
	if (bpf_check_mtu(skb, 0, &mtu, sizeof(*outer), 0) != BPF_MTU_CHK_RET_SUCCESS)
		return -1;
	if (bpf_skb_adjust_room(skb, sizeof(*outer), BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4))
		return -1;
	// The headers moved: every pointer is read again. They are in the
	// linear part (the caller's pull, and the room made before it).
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	outer = (void *)(eth + 1);
	ip = (void *)(outer + 1);
	if ((void *)(ip + 1) > end)
		return TC_ACT_SHOT;
	rewrite(f, eth, ip, segs, bytes, fresh);
	len = skb->len - sizeof(*eth) > 0xffff ? 0xffff : skb->len - sizeof(*eth);
	ecn = ip->tos & 3;
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = (ip->tos & ~3) | (ecn == 3 ? 2 : ecn);
	outer->tot_len = bpf_htons(len);
	outer->frag_off = ip->frag_off & bpf_htons(IP_DF);
	outer->id = outer->frag_off ? 0 : (__u16)bpf_get_prandom_u32();
	outer->ttl = ip->ttl;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = f->tun_saddr;
	outer->daddr = f->tun_daddr;
	outer->check = ip_checksum(outer);
	return 0;
}

#endif
