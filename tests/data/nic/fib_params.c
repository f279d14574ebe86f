/* XDP and TC test object: bpf_fib_lookup on parameters the packet carries.
 *
 * After the 14-byte Ethernet header and 2 bytes of padding the frame holds a
 * struct req: the flags, the 64-byte struct bpf_fib_lookup, and room for the
 * return code.  The program copies the parameters to the stack, calls the
 * helper, and writes the struct and the return code back into the frame, so
 * data_out shows everything the kernel wrote.  Bytes after the struct req are
 * padding, for the TC length check against the egress MTU.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct fib { __u64 raw[8]; };     /* struct bpf_fib_lookup, as 8-byte words */
struct req { __u32 flags, pad; struct fib params; __s64 rc; };

#define REQ_AT 16

static __always_inline int lookup(void *ctx, void *data, void *end)
{
    struct req *r = data + REQ_AT;
    if ((void *)(r + 1) > end)
        return -1;
    struct fib p;
    __builtin_memcpy(&p, &r->params, sizeof(p));
    long rc = bpf_fib_lookup(ctx, (struct bpf_fib_lookup *)&p, sizeof(p), r->flags);
    __builtin_memcpy(&r->params, &p, sizeof(p));
    r->rc = rc;
    return 0;
}

SEC("xdp") int fib_xdp(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    return lookup(ctx, data, end) ? XDP_ABORTED : XDP_PASS;
}

SEC("tc") int fib_tc(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    return lookup(skb, data, end) ? 2 /* TC_ACT_SHOT */ : 0 /* TC_ACT_OK */;
}

char LICENSE[] SEC("license") = "GPL";
