/* One map word both read and counted atomically: the NFP keeps each 4-byte word of a
 * value either read or an atomic counter. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } budget SEC(".maps");

SEC("xdp")
int wordmix(struct xdp_md *ctx)
{
    __u32 k = 0;
    __u64 *n = bpf_map_lookup_elem(&budget, &k);
    if (!n)
        return XDP_PASS;
    if (*n > 1000)
        return XDP_DROP;
    xadd64(n, 1);
    return XDP_PASS;
}
