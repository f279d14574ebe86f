/* A BPF-to-BPF call (built for -mcpu=v2): the NFP translates it, hXDP's compiler has
 * no callees. */
#include "common.h"

static __attribute__((noinline)) int classify(__u32 len)
{
    return len > 1000 ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int hxdp_subprog(struct xdp_md *ctx)
{
    return classify(ctx->data_end - ctx->data);
}
