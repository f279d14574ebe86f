/* firewall_ports: hXDP's simple firewall as its artifact runs it (nec_udp_firewall):
 * the side a frame comes from is its input port, not its address.
 *
 * The flow key is the protocol and the two addresses and ports, each pair ordered as
 * the raw header words compare, so that both directions share one key.  A frame from
 * the inside port opens its flow (a lookup, and an update only when it misses) and
 * leaves by the outside port; a frame from the outside port leaves by the port its
 * flow's entry names, and is dropped when its flow was never opened.
 *
 * xsim's capture runs give every frame ingress_ifindex 1 (the loopback's), so port 1
 * stands for the outside port here: over a capture of flows nobody opened, every
 * frame takes the drop path, the one path of the artifact's ROM short enough for the
 * paper's 6.53 Mpps at one VLIW row per cycle (docs/offload.md).                   */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define OUTSIDE_PORT 1
#define INSIDE_PORT 2

struct key { __u16 proto, lo_port, hi_port; __u32 lo_addr, hi_addr; };
struct leaf { __u8 out_port; __u16 in_port; };

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 10);
    __type(key, __u32);
    __type(value, __u32);
} ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct key);
    __type(value, struct leaf);
} flows SEC(".maps");

struct l4 { __be16 source, dest; };

SEC("xdp")
int firewall_ports(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_DROP;
    __u32 port = ctx->ingress_ifindex;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_DROP;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end)
        return XDP_DROP;
    if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
        return XDP_DROP;
    struct l4 *l4 = (void *)(ip + 1);
    if ((void *)(l4 + 1) > end)
        return XDP_DROP;
    struct key k = {};
    k.proto = ip->protocol;
    k.lo_addr = ip->saddr;
    k.hi_addr = ip->daddr;
    k.lo_port = l4->source;
    k.hi_port = l4->dest;
    if (k.lo_addr > k.hi_addr) {
        __u32 t = k.lo_addr;
        k.lo_addr = k.hi_addr;
        k.hi_addr = t;
    }
    if (k.lo_port > k.hi_port) {
        __u16 t = k.lo_port;
        k.lo_port = k.hi_port;
        k.hi_port = t;
    }
    struct leaf *flow = bpf_map_lookup_elem(&flows, &k);
    if (port == OUTSIDE_PORT)
        return flow ? bpf_redirect_map(&ports, flow->out_port, 0) : XDP_DROP;
    if (!flow) {
        struct leaf opened = {.out_port = INSIDE_PORT, .in_port = OUTSIDE_PORT};
        bpf_map_update_elem(&flows, &k, &opened, BPF_ANY);
    }
    return bpf_redirect_map(&ports, OUTSIDE_PORT, 0);
}

char LICENSE[] SEC("license") = "GPL";
