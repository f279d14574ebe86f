/* Tail calls: a chain through a prog array initialised in C, a slot left empty, an
 * index out of range, and a program that tail-calls itself until the kernel's limit
 * of 33.  Sleepable (syscall) programs may not use prog arrays, so these are raw
 * tracepoint programs; what they did is kept in globals (ctx[0] seeds the trace). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

int step_a(__u64 *ctx);
int step_b(__u64 *ctx);
int again(__u64 *ctx);

struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 8);
         __uint(key_size, 4); __array(values, int (__u64 *)); } jumps SEC(".maps") = {
    .values = { [0] = (void *)&step_a, [1] = (void *)&step_b, [3] = (void *)&again },
};

__u64 trace;                    /* .bss */
__u64 calls;
__u64 fell_through = 100;       /* .data */

SEC("raw_tp") int chain(__u64 *ctx)
{
    trace = ctx[0] * 10 + 1;
    bpf_tail_call(ctx, &jumps, 0);
    return -1;                  /* not reached */
}

SEC("raw_tp") int step_a(__u64 *ctx)
{
    trace = trace * 10 + 2;
    bpf_tail_call(ctx, &jumps, 1);
    return -2;
}

SEC("raw_tp") int step_b(__u64 *ctx)
{
    trace = trace * 10 + 3;
    bpf_tail_call(ctx, &jumps, 2);      /* empty slot: goes on here */
    fell_through++;
    bpf_tail_call(ctx, &jumps, 100);    /* out of range: goes on here */
    fell_through++;
    trace = trace * 10 + 4;
    return trace;
}

SEC("raw_tp") int again(__u64 *ctx)
{
    calls++;
    bpf_tail_call(ctx, &jumps, 3);      /* fails after 33 tail calls */
    return calls;
}

/* slot 4 is filled from --maps-in (value_prog) */
SEC("raw_tp") int via_maps_in(__u64 *ctx)
{
    bpf_tail_call(ctx, &jumps, 4);
    return 77;
}

char LICENSE[] SEC("license") = "GPL";
