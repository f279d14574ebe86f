/* xdp_md->ingress_ifindex: the NFP JIT reads only data and data_end. */
#include "common.h"

SEC("xdp")
int ctxread(struct xdp_md *ctx)
{
    return ctx->ingress_ifindex == 2 ? XDP_DROP : XDP_PASS;
}
