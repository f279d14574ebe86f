/* A remainder by a value read from the packet: the NFP JIT has no modulo (a remainder
 * by a constant, LLVM turns into a multiply and shifts, which the NFP takes). */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 256);
         __type(key, __u32); __type(value, __u64); } buckets SEC(".maps");

SEC("xdp")
int mod(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct iphdr *ip = ipv4(data, end);
    if (!ip || !ip->ttl)
        return XDP_PASS;
    __u32 k = ip->saddr % ip->ttl;
    __u64 *n = bpf_map_lookup_elem(&buckets, &k);
    if (n)
        xadd64(n, 1);
    return XDP_PASS;
}
