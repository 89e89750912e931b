// SPDX-License-Identifier: MIT OR Apache-2.0
// uvs's XDP program: steers the director's own traffic (frames for a VIP,
// and NAT replies from a real server's port) to uvs's AF_XDP socket on the
// receive queue, and passes every other frame to the kernel untouched.
// uvs fills the maps from each published table; a frame the maps do not
// claim still reaches uvs through its AF_PACKET socket, so a map that lags
// a table costs speed, never a connection.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// The largest frame an AF_XDP socket frame holds (xsk.rs: 4 KiB frames,
// less the kernel's headroom).
#define MAX_FRAME 3584

// A NAT real server's address, port and protocol: the source of its replies.
struct rs_key {
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad;
};

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

SEC("xdp")
int uvs_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u32 hl;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	// A super-frame (generic XDP sees them whole) does not fit a socket
	// frame: the packet socket takes it, and sends it on whole.
	if (data + MAX_FRAME < end)
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	if (bpf_map_lookup_elem(&vips, &ip->daddr))
		goto steer;
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

char LICENSE[] SEC("license") = "Dual MIT/GPL";
