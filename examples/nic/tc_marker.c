/* tc_marker: a TC classifier that marks, rewrites and redirects.
 *
 * IPv4 UDP to port 53 gets skb->mark 53 and DSCP EF (46) in its TOS byte, with
 * the IP checksum fixed by bpf_l3_csum_replace; TCP to port 22 is redirected
 * to ifindex 1; everything else passes.  Per-action counters in `actions`.  */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u64); } actions SEC(".maps");

static __always_inline int done(__u32 k, int act)
{
    __u64 *n = bpf_map_lookup_elem(&actions, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    return act;
}

SEC("tc")
int tc_marker(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return done(0, TC_ACT_OK);
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->ihl != 5)
        return done(0, TC_ACT_OK);
    if (ip->protocol == IPPROTO_UDP) {
        struct udphdr *udp = (void *)(ip + 1);
        if ((void *)(udp + 1) > end || udp->dest != bpf_htons(53))
            return done(0, TC_ACT_OK);
        __u8 old_tos = ip->tos, new_tos = 46 << 2;
        skb->mark = 53;
        bpf_l3_csum_replace(skb, ETH_HLEN + 10, bpf_htons(old_tos), bpf_htons(new_tos), 2);
        bpf_skb_store_bytes(skb, ETH_HLEN + 1, &new_tos, 1, 0);
        return done(1, TC_ACT_OK);
    }
    if (ip->protocol == IPPROTO_TCP) {
        struct tcphdr *tcp = (void *)(ip + 1);
        if ((void *)(tcp + 1) <= end && tcp->dest == bpf_htons(22))
            return done(2, bpf_redirect(1, 0));
    }
    return done(3, TC_ACT_OK);
}

char LICENSE[] SEC("license") = "GPL";
