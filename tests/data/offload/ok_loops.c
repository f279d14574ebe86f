/* Bounded loops the NFP offload takes: over a stack array at constant offsets (the
 * verifier walks each iteration) and over packet bytes, with 32-bit sums. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } acc SEC(".maps");

SEC("xdp")
int ok_loops(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    __u8 *p = data;
    volatile __u32 buf[8];
    __u32 sum = 0;
#pragma nounroll
    for (int i = 0; i < 8; i++)
        buf[i] = i;
#pragma nounroll
    for (int i = 0; i < 8; i++)
        sum += buf[i];
#pragma nounroll
    for (int i = 0; i < 64; i++) {
        if ((void *)(p + i + 1) > end)
            break;
        sum += p[i] * 3;
    }
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&acc, &k);
    if (v)
        xadd64(v, sum / 5);
    return XDP_PASS;
}
