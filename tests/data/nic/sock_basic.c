/* Socket filter test object: __sk_buff from the network header, LD_ABS/LD_IND, cb. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define BPF_HDR_START_MAC 0
#define BPF_HDR_START_NET 1

#define SKF_NET_OFF (-0x100000)
#define SKF_LL_OFF (-0x200000)

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 16);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");

static void note(__u32 k, __u64 v) { bpf_map_update_elem(&seen, &k, &v, BPF_ANY); }

SEC("socket") int fields(struct __sk_buff *skb)
{
    note(0, skb->len); note(1, skb->protocol); note(2, skb->pkt_type);
    note(3, skb->mark); note(4, skb->ifindex); note(5, skb->cb[0]);
    note(6, load_byte(skb, 0));                       /* the IP version and length */
    note(7, load_half(skb, SKF_NET_OFF + 2));         /* the IP total length */
    note(8, load_word(skb, SKF_LL_OFF + 26));         /* the source address, from L2 */
    note(9, load_byte(skb, skb->len - 1));            /* LD_IND: the last byte */
    note(10, skb->priority);
    return skb->len;
}

SEC("socket") int out_of_bounds(struct __sk_buff *skb)
{
    note(0, 1);
    note(1, load_byte(skb, skb->len));                /* one past the end: returns 0 */
    return 7;
}

SEC("socket") int far_negative(struct __sk_buff *skb)
{
    note(0, load_byte(skb, -1));                      /* neither NET_OFF nor LL_OFF: 0 */
    return 9;
}

SEC("socket") int load_bytes(struct __sk_buff *skb)
{
    __u32 v = 0;
    note(0, bpf_skb_load_bytes(skb, 12, &v, 4));      /* the IP source address */
    note(1, v);
    note(2, bpf_skb_load_bytes(skb, skb->len - 2, &v, 4));
    note(3, v);
    return 0xffff;
}

SEC("socket") int writes_cb(struct __sk_buff *skb)
{
    skb->cb[0] = 0x77;
    skb->cb[4] = skb->len;
    return 20;
}

char LICENSE[] SEC("license") = "GPL";

SEC("socket") int relative(struct __sk_buff *skb)
{
    __u32 v = 0;
    note(0, bpf_skb_load_bytes_relative(skb, 6, &v, 4, BPF_HDR_START_MAC));
    note(1, v);
    note(2, bpf_skb_load_bytes_relative(skb, 12, &v, 4, BPF_HDR_START_NET));
    note(3, v);
    note(4, bpf_skb_load_bytes_relative(skb, 52, &v, 4, BPF_HDR_START_MAC));
    note(5, bpf_skb_load_bytes_relative(skb, 0, &v, 4, 2));
    note(6, bpf_skb_load_bytes_relative(skb, 50, &v, 4, BPF_HDR_START_MAC));
    return 1;
}
