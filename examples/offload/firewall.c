/* firewall: hXDP's running example, a simple stateful firewall (OSDI 2020, Sec. 2).
 *
 * It parses Ethernet, IPv4 and UDP/TCP to the flow's 5-tuple and orders the two
 * addresses and ports so that both directions of a flow share one key.  Frames from
 * the inside (source in 10.0.0.0/8; the paper uses the input port) create or refresh
 * the flow's entry and are forwarded; frames from the outside are forwarded only
 * when their flow has an entry, else dropped.  Forwarding is XDP_TX.             */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct flow { __u32 lo_addr, hi_addr; __u16 lo_port, hi_port; __u8 proto, pad[3]; };

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct flow);
    __type(value, __u64);
} flows SEC(".maps");

struct ports { __be16 source, dest; };

SEC("xdp")
int firewall(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_DROP;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->ihl != 5)
        return XDP_DROP;
    if (ip->protocol != IPPROTO_UDP && ip->protocol != IPPROTO_TCP)
        return XDP_DROP;
    struct ports *l4 = (void *)(ip + 1);
    if ((void *)(l4 + 1) > end)
        return XDP_DROP;
    __u32 src = bpf_ntohl(ip->saddr), dst = bpf_ntohl(ip->daddr);
    __u16 sport = bpf_ntohs(l4->source), dport = bpf_ntohs(l4->dest);
    struct flow key = {};
    key.proto = ip->protocol;
    if (src < dst) {
        key.lo_addr = src; key.hi_addr = dst; key.lo_port = sport; key.hi_port = dport;
    } else {
        key.lo_addr = dst; key.hi_addr = src; key.lo_port = dport; key.hi_port = sport;
    }
    if ((src >> 24) == 10) {
        __u64 seen = 1;
        bpf_map_update_elem(&flows, &key, &seen, BPF_ANY);
        return XDP_TX;
    }
    return bpf_map_lookup_elem(&flows, &key) ? XDP_TX : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
