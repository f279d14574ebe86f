/* A division by a value read from the packet: the NFP divides only by a constant. */
#include "common.h"

SEC("xdp")
int divreg(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct iphdr *ip = ipv4(data, end);
    if (!ip || !ip->ttl)
        return XDP_PASS;
    __u32 per_hop = bpf_ntohs(ip->tot_len) / ip->ttl;
    return per_hop > 100 ? XDP_DROP : XDP_PASS;
}
