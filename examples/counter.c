/* counter: a syscall program that counts events per key.
 *
 * The context is { u32 key; u32 amount; }.  The program adds `amount` to the
 * key's total in a hash map, keeps a running event count in global data,
 * logs with bpf_printk, and returns the key's new total.  Run it with
 *     xsim run examples/counter.o --ctx-in examples/counter.ctx --json
 * or, on Linux as root, the same through the kernel with --kernel.          */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event { __u32 key; __u32 amount; };

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 128);
    __type(key, __u32);
    __type(value, __u64);
} totals SEC(".maps");

__u64 events;                      /* .bss */
const volatile __u32 max_amount = 1000;   /* .rodata: set before loading */

static __noinline __u64 add_to(__u32 key, __u64 amount)
{
    __u64 *total = bpf_map_lookup_elem(&totals, &key);
    if (total) {
        __sync_fetch_and_add(total, amount);
        return *total;
    }
    bpf_map_update_elem(&totals, &key, &amount, BPF_NOEXIST);
    return amount;
}

SEC("syscall")
int count(struct event *ev)
{
    __u32 amount = ev->amount > max_amount ? max_amount : ev->amount;
    __u64 total = add_to(ev->key, amount);
    events++;
    bpf_printk("key %u total %llu", ev->key, total);
    return (int)total;
}

char LICENSE[] SEC("license") = "GPL";
