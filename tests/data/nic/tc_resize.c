/* TC test object: the helpers that change the frame's length and its VLAN tags. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 16);
         __type(key, __u32); __type(value, __u64); } seen SEC(".maps");

static void note(__u32 k, __u64 v) { bpf_map_update_elem(&seen, &k, &v, BPF_ANY); }

static __u64 arg(__u32 k)
{
    __u64 *v = bpf_map_lookup_elem(&seen, &k);
    return v ? *v : 0;
}

SEC("tc") int change_tail(struct __sk_buff *skb)
{
    note(1, bpf_skb_change_tail(skb, arg(0), 0));
    note(2, skb->len);
    note(3, (long)skb->data_end - (long)skb->data);
    return TC_ACT_OK;
}

SEC("tc") int change_tail_flags(struct __sk_buff *skb)
{
    note(1, bpf_skb_change_tail(skb, skb->len, 1));
    return TC_ACT_OK;
}

SEC("tc") int change_head(struct __sk_buff *skb)
{
    note(1, bpf_skb_change_head(skb, arg(0), 0));
    note(2, skb->len);
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    if (data + 4 <= end)
        *(__u32 *)data = 0x11223344;
    note(3, bpf_skb_change_head(skb, 4, 1));
    return TC_ACT_OK;
}

SEC("tc") int vlans(struct __sk_buff *skb)
{
    __u64 mode = arg(0);
    note(1, bpf_skb_vlan_push(skb, bpf_htons(0x8100), 0x123));
    note(2, skb->vlan_present); note(3, skb->vlan_tci); note(4, skb->vlan_proto);
    note(5, skb->len); note(6, skb->protocol);
    if (mode >= 1) {
        note(7, bpf_skb_vlan_push(skb, bpf_htons(0x88a8), 0x456));
        note(8, skb->vlan_tci); note(9, skb->len); note(10, skb->protocol);
    }
    if (mode >= 2) {
        note(11, bpf_skb_vlan_pop(skb));
        note(12, skb->vlan_present); note(13, skb->vlan_tci); note(14, skb->len);
        note(15, skb->protocol);
    }
    if (mode >= 3) {
        note(11, bpf_skb_vlan_pop(skb));
        note(12, skb->vlan_present); note(13, skb->len); note(14, skb->protocol);
    }
    return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";

SEC("tc") int adjust_room(struct __sk_buff *skb)
{
    note(4, bpf_skb_adjust_room(skb, (__s32)arg(1), arg(2), arg(3)));
    note(5, skb->len);
    note(6, skb->protocol);
    return TC_ACT_OK;
}
