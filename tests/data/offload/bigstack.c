/* 448 bytes of stack and a subprogram: within the kernel's 512, but the NFP rounds each
 * frame up to 64 bytes and adds the call's return address and saved r6-r9. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
         __type(key, __u32); __type(value, __u64); } sums SEC(".maps");

static __attribute__((noinline)) __u64 mix(__u64 a, __u64 b)
{
    __u64 x = a ^ (b << 7);
    x ^= x >> 13;
    return x + b;
}

#define SET(i) buf[i] = (i) * 3;
#define SET8(i) SET(i) SET(i + 1) SET(i + 2) SET(i + 3) SET(i + 4) SET(i + 5) SET(i + 6) SET(i + 7)
#define MIX(i) sum = mix(sum, buf[i]);
#define MIX8(i) MIX(i) MIX(i + 1) MIX(i + 2) MIX(i + 3) MIX(i + 4) MIX(i + 5) MIX(i + 6) MIX(i + 7)

SEC("xdp")
int bigstack(struct xdp_md *ctx)
{
    volatile __u64 buf[56];
    __u32 k = 0;
    __u64 sum = 0;
    SET8(0) SET8(8) SET8(16) SET8(24) SET8(32) SET8(40) SET8(48)
    MIX8(0) MIX8(8) MIX8(16) MIX8(24) MIX8(32) MIX8(40) MIX8(48)
    bpf_map_update_elem(&sums, &k, &sum, BPF_ANY);
    return XDP_PASS;
}
