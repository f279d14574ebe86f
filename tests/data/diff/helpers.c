/* Helpers from syscall programs: time, random, CPU, printk, snprintf, strtol/strtoul,
 * probe_read_kernel/user of a stack buffer.  ctx is struct hctx (ctx_in).        */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct hctx {
    __u64 ncpus;          /* in: possible CPUs */
    __u64 out[16];        /* results */
    char text[32];        /* snprintf output */
};

SEC("syscall") int time_rand_cpu(struct hctx *ctx)
{
    __u64 t1 = bpf_ktime_get_ns(), t2 = bpf_ktime_get_ns();
    __u32 r = bpf_get_prandom_u32();
    __u32 cpu = bpf_get_smp_processor_id();

    ctx->out[0] = t2 >= t1;
    ctx->out[1] = cpu < ctx->ncpus;
    ctx->out[2] = (r | 1) != 0;
    return 0;
}

SEC("syscall") int printk(struct hctx *ctx)
{
    ctx->out[0] = bpf_printk("diff %d %s", 42, "ok");
    ctx->out[1] = bpf_printk("no args");
    ctx->out[2] = bpf_printk("%llx %u %c", 0xabcdULL, 7, 'z');
    return 1;
}

SEC("syscall") int snprintf(struct hctx *ctx)
{
    char buf[32] = {};      /* bpf_snprintf leaves the bytes after the NUL as they were */
    __u64 args[3];
    static const char fmt[] = "n=%d s=%lld x=%x";
    args[0] = 123;
    args[1] = (__u64)-5;
    args[2] = 0xbeef;
    long n = bpf_snprintf(buf, sizeof(buf), fmt, args, 3 * 8);

    ctx->out[0] = n;
    __builtin_memcpy(ctx->text, buf, sizeof(buf));
    ctx->out[1] = bpf_snprintf(buf, 8, fmt, args, 3 * 8);     /* cut to 7 chars + NUL */
    __builtin_memcpy(&ctx->out[2], buf, 8);
    return n;
}

SEC("syscall") int strtox(struct hctx *ctx)
{
    char a[8] = "-1234x", b[8] = "0x1fz", c[8] = "  077", d[4] = "abc";
    long l = 0;
    unsigned long u = 0;

    ctx->out[0] = bpf_strtol(a, sizeof(a), 0, &l);
    ctx->out[1] = l;
    ctx->out[2] = bpf_strtoul(b, sizeof(b), 0, &u);
    ctx->out[3] = u;
    ctx->out[4] = bpf_strtoul(c, sizeof(c), 0, &u);
    ctx->out[5] = u;
    ctx->out[6] = bpf_strtol(d, sizeof(d), 10, &l);
    ctx->out[7] = bpf_strtoul(c, sizeof(c), 10, &u);
    ctx->out[8] = u;
    ctx->out[9] = bpf_strtol(a, 3, 10, &l);
    ctx->out[10] = l;
    return 0;
}

SEC("syscall") int probe_read_kernel(struct hctx *ctx)
{
    __u64 src[2], dst[2];

    src[0] = 0x1122334455667788ULL;
    src[1] = 0x99aabbccddeeff00ULL;
    dst[0] = dst[1] = 1;
    ctx->out[0] = bpf_probe_read_kernel(dst, sizeof(dst), src);
    ctx->out[1] = dst[0];
    ctx->out[2] = dst[1];
    return 0;
}

/* A stack buffer is kernel memory: reading it as user memory fails (-EFAULT, dst zeroed). */
SEC("syscall") int probe_read_user(struct hctx *ctx)
{
    __u64 src[2], dst[2];

    src[0] = 0x1122334455667788ULL;
    src[1] = 0x99aabbccddeeff00ULL;
    dst[0] = dst[1] = 1;
    ctx->out[0] = bpf_probe_read_user(dst, sizeof(dst), src);
    ctx->out[1] = dst[0];
    ctx->out[2] = dst[1];
    return 0;
}

/* A user-space address read as kernel memory: x86-64 refuses it (-ERANGE, dst zeroed). */
SEC("syscall") int probe_read_bad(struct hctx *ctx)
{
    __u64 dst[2];

    dst[0] = dst[1] = 1;
    ctx->out[0] = bpf_probe_read_kernel(dst, sizeof(dst), (void *)8);
    ctx->out[1] = dst[0];
    ctx->out[2] = dst[1];
    return 0;
}

/* bpf_csum_diff is not for syscall programs: a tc program, results in an array. */
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u64); } csums SEC(".maps");

static void put(__u32 i, __u64 v)
{
    __u64 *slot = bpf_map_lookup_elem(&csums, &i);

    if (slot)
        *slot = v;
}

SEC("tc") int csum(struct __sk_buff *skb)
{
    __u32 from[2], to[3];

    from[0] = 0x01020304; from[1] = 0x05060708;
    to[0] = 0x0a0b0c0d; to[1] = 0x01020304; to[2] = 0xffff0000;
    put(0, (__u32)bpf_csum_diff(from, 8, to, 8, 0));
    put(1, (__u32)bpf_csum_diff(0, 0, to, 12, 0x1234));
    put(2, (__u32)bpf_csum_diff(from, 8, 0, 0, 0));
    put(3, (__u32)bpf_csum_diff(from, 8, to, 12, 0xffffffff));
    return 1;
}

/* ... which the kernel refuses in a syscall program */
SEC("syscall") int csum_syscall(struct hctx *ctx)
{
    __u32 word = 0x01020304;

    return bpf_csum_diff(0, 0, &word, 4, 0);
}

char LICENSE[] SEC("license") = "GPL";
