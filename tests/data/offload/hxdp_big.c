/* A hash over the first 384 bytes, written out (built for -mcpu=v2): more eBPF
 * instructions than hXDP's 256 rows of 4 can hold. */
#include "common.h"

#define STEP(i) sum = (sum << 5) - sum + p[i];
#define STEP8(i) STEP(i) STEP(i + 1) STEP(i + 2) STEP(i + 3) STEP(i + 4) STEP(i + 5) \
                 STEP(i + 6) STEP(i + 7)
#define STEP64(i) STEP8(i) STEP8(i + 8) STEP8(i + 16) STEP8(i + 24) STEP8(i + 32) \
                  STEP8(i + 40) STEP8(i + 48) STEP8(i + 56)

SEC("xdp")
int hxdp_big(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 384 > end)
        return XDP_PASS;
    __u8 *p = data;
    __u64 sum = 0;
    STEP64(0) STEP64(64) STEP64(128) STEP64(192) STEP64(256) STEP64(320)
    return sum & 1 ? XDP_DROP : XDP_PASS;
}
