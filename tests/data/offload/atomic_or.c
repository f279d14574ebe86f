/* An atomic OR on a map value: the NFP's atomics are add only. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } seen_protocols SEC(".maps");

SEC("xdp")
int atomic_or(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct iphdr *ip = ipv4(data, end);
    __u32 k = 0;
    __u64 *bits = bpf_map_lookup_elem(&seen_protocols, &k);
    if (ip && bits)
        __sync_fetch_and_or(bits, 1ULL << (ip->protocol & 63));
    return XDP_PASS;
}
