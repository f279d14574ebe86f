/* Loader test object: programs of many types, several per section, BTF maps
 * of many types, global data, static and global subprograms, a prog array
 * initialised in C, and a tail call.                                        */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
         __type(key, __u32); __type(value, __u64); } hash SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8);
         __type(key, __u32); __type(value, __u32); } arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 4);
         __uint(key_size, 4); __uint(value_size, 8); } pcpu SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 16);
         __type(key, __u64); __type(value, __u32); } lru SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __uint(max_entries, 8);
         __uint(value_size, 4); } queue SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(max_entries, 16);
         __uint(key_size, 8); __uint(value_size, 4);
         __uint(map_flags, BPF_F_NO_PREALLOC); } lpm SEC(".maps");

int tail_target(void *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 4);
         __uint(key_size, 4); __array(values, int (void *)); } jumps SEC(".maps") = {
    .values = { [1] = (void *)&tail_target },
};

int counter = 3;
__u64 zeroed;
const volatile __u32 limit = 10;

static __noinline int helper_sub(int x) { return x + counter; }
__noinline int global_sub(int x) { return helper_sub(x) * 2; }

SEC("syscall") int sys_prog(__u32 *ctx)
{
    __u32 key = 1;
    __u64 *v = bpf_map_lookup_elem(&hash, &key);
    zeroed++;
    if (v)
        return global_sub((int)*v) + limit;
    return global_sub(*ctx);
}

SEC("syscall") int tail_target(void *ctx) { return 42; }
SEC("syscall") int tail_caller(void *ctx) { bpf_tail_call(ctx, &jumps, 1); return 7; }

SEC("xdp") int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
SEC("xdp") int xdp_drop(struct xdp_md *ctx) { return XDP_DROP; }
SEC("xdp.frags") int xdp_frags(struct xdp_md *ctx) { return XDP_PASS; }
SEC("tc") int tc_prog(struct __sk_buff *skb) { return 0; }
SEC("tcx/ingress") int tcx_prog(struct __sk_buff *skb) { return 0; }
SEC("socket") int sock_prog(struct __sk_buff *skb) { return skb->len; }
SEC("kprobe/do_sys_openat2") int kp(void *ctx) { return 0; }
SEC("tracepoint/syscalls/sys_enter_openat") int tp(void *ctx) { return 0; }

char LICENSE[] SEC("license") = "GPL";
