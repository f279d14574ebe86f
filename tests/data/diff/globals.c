/* Global data (.data, .bss, .rodata) read and written, static and global
 * subprograms, and BPF-to-BPF calls that use the stack in every frame.          */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct gctx { __u64 n; __u64 out[4]; };

__u64 counter = 5;                              /* .data */
__u32 table[8] = {1, 1, 2, 3, 5, 8, 13, 21};    /* .data */
__u64 runs;                                     /* .bss */
__u8 scratch[16];                               /* .bss */
const volatile __u64 scale = 3;                 /* .rodata */
const char tag[8] = "xsim-gd";                  /* .rodata */

static __noinline __u64 mix(__u64 x)
{
    volatile __u64 buf[8];                      /* 64 bytes of stack in this frame */
    __u64 s = 0;
    int i;

    for (i = 0; i < 8; i++)
        buf[i] = x + i * scale;
    for (i = 0; i < 8; i++)
        s += buf[i] ^ table[i];
    return s;
}

static __noinline __u64 leaf(__u64 a, __u64 b)
{
    volatile __u8 pad[40];

    pad[0] = a;
    pad[39] = b;
    return pad[0] + pad[39] * 2 + mix(a);
}

__noinline __u64 global_sum(__u64 n)
{
    volatile __u64 frame[4];

    frame[0] = n;
    frame[3] = leaf(n, counter);
    return frame[0] + frame[3];
}

SEC("syscall") int globals(struct gctx *ctx)
{
    __u64 n = ctx->n;
    int i;

    runs++;
    counter += n;
    table[n & 7] = table[n & 7] * 2 + 1;
    for (i = 0; i < 8; i++)
        scratch[i] = tag[i] ^ (__u8)i;
    scratch[15] = (__u8)scale;
    ctx->out[0] = global_sum(n);
    ctx->out[1] = mix(counter);
    ctx->out[2] = runs * 1000 + counter;
    return (int)(ctx->out[0] + ctx->out[1]);
}

char LICENSE[] SEC("license") = "GPL";
