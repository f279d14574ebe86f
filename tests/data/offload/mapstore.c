/* A plain store into a map value: the NFP writes map values only through helpers and
 * atomic adds. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } last_len SEC(".maps");

SEC("xdp")
int mapstore(struct xdp_md *ctx)
{
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&last_len, &k);
    if (v)
        *v = ctx->data_end - ctx->data;
    return XDP_PASS;
}
