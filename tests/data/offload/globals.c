/* A global variable: libbpf makes .bss a map with BPF_F_MMAPABLE, and the NFP takes no
 * map flags. */
#include "common.h"

__u32 threshold;

SEC("xdp")
int globals(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    return end - data > threshold ? XDP_DROP : XDP_PASS;
}
