/* XDP test object: bpf_fib_lookup on the packet's IPv4 destination. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct fib { __u8 family, l4; __u16 sport, dport, tot_len; __u32 ifindex, tos;
             __u32 src[4], dst[4]; __u32 vlan; __u8 smac[6], dmac[6]; };

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, struct fib); } last SEC(".maps");

SEC("xdp") int route(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end)
        return XDP_ABORTED;
    struct fib p = { .family = 2, .tot_len = bpf_ntohs(ip->tot_len), .ifindex = ctx->ingress_ifindex };
    p.src[0] = ip->saddr;
    p.dst[0] = ip->daddr;
    long rc = bpf_fib_lookup(ctx, (void *)&p, sizeof(p), 0);
    __u32 k = 0;
    bpf_map_update_elem(&last, &k, &p, BPF_ANY);
    if (rc == 0) {
        __builtin_memcpy(eth->h_dest, p.dmac, 6);
        __builtin_memcpy(eth->h_source, p.smac, 6);
        return bpf_redirect(p.ifindex, 0);
    }
    return rc == 4 ? XDP_PASS : XDP_DROP;     /* not forwarded: up the stack */
}
char LICENSE[] SEC("license") = "GPL";
