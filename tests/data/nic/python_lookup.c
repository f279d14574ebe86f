/* An XDP program with a lookup the interpreter's core does not serve (a devmap_hash's), so
 * that the JIT hands each run's rest to the interpreter (tests/test_jit_handoff.py).
 * It reads r0 on entry (the verifier would refuse that; xsim runs it), so that a run
 * that starts with the wrong r0 returns another verdict.                            */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_DEVMAP_HASH); __uint(max_entries, 2);
         __type(key, __u32); __type(value, __u32); } ports SEC(".maps");

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");

SEC("xdp") int carry(struct xdp_md *ctx)
{
    __u64 last, *p;
    __u32 k = 0, slot, *ifindex;

    asm volatile("%0 = r0" : "=r"(last));      /* the last run's r0 */
    p = bpf_map_lookup_elem(&seen, &k);         /* served by the core */
    if (p)
        *p += 1;
    slot = (ctx->data_end - ctx->data) & 1;
    ifindex = bpf_map_lookup_elem(&ports, &slot);  /* Python's: the rest is interpreted */
    k = 1;
    p = bpf_map_lookup_elem(&seen, &k);
    if (p)
        *p += last + 1 + (ifindex ? *ifindex : 100);
    return (last + 1) % 3;
}

char LICENSE[] SEC("license") = "GPL";
