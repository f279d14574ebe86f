/* Every context field the native runner mirrors into the kernel's structs, read (and the
 * writable ones written), for tests/test_native.py: struct sk_buff for a TC program,
 * struct xdp_buff and its rx queue for an XDP one.  The barriers keep clang from
 * merging the stores into one wider store, which the verifier refuses.              */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define BARRIER asm volatile("" ::: "memory")

SEC("tc") int skb_fields(struct __sk_buff *skb)
{
    void *meta = (void *)(long)skb->data_meta, *data = (void *)(long)skb->data;
    __u64 h = skb->len * 3 + skb->pkt_type * 5 + skb->mark * 7 + skb->queue_mapping * 11;
    h += skb->protocol * 13 + skb->vlan_present * 17 + skb->vlan_tci * 19 + skb->vlan_proto;
    h += skb->priority * 23 + skb->ingress_ifindex * 29 + skb->ifindex * 31;
    h += skb->tc_index * 37 + skb->cb[0] + skb->cb[4] * 41 + skb->hash * 43;
    h += skb->tc_classid * 47 + skb->wire_len * 53;
    if (meta == data)
        h += 59;
    skb->mark = 99; BARRIER;
    skb->priority = 7; BARRIER;
    skb->cb[2] = 5; BARRIER;
    skb->tc_index = 3; BARRIER;
    skb->tc_classid = 0x10002; BARRIER;
    skb->queue_mapping = 2;
    return h & 0xffff;
}

SEC("xdp") int xdp_fields(struct xdp_md *ctx)
{
    void *meta = (void *)(long)ctx->data_meta, *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    int r = ctx->ingress_ifindex * 3 + ctx->rx_queue_index * 5;
    if (meta == data)
        r += 7;
    if (data + 60 < end)
        r += 11;
    return r;
}

char LICENSE[] SEC("license") = "GPL";
