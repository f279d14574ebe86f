/* bpf_perf_event_output() to CPU 0: the NFP sends events only for the current CPU. */
#include "common.h"

struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } events SEC(".maps");

SEC("xdp")
int perf_flags(struct xdp_md *ctx)
{
    __u32 len = ctx->data_end - ctx->data;
    bpf_perf_event_output(ctx, &events, 0, &len, sizeof(len));
    return XDP_PASS;
}
