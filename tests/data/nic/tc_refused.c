/* TC programs the verifier refuses for their context accesses (one each). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define AT(type, off) (*(volatile type *)((char *)skb + (off)))

SEC("tc") int write_len(struct __sk_buff *skb) { AT(__u32, 0) = 1; return 0; }
SEC("tc") int narrow_write(struct __sk_buff *skb) { AT(__u16, 8) = 1; return 0; }
SEC("tc") int read_family(struct __sk_buff *skb) { return AT(__u32, 88); }
SEC("tc") int wide_read(struct __sk_buff *skb) { return AT(__u64, 8); }
SEC("tc") int narrow_data(struct __sk_buff *skb) { return AT(__u16, 76); }
SEC("tc") int cb_overrun(struct __sk_buff *skb) { return AT(__u64, 64); }
SEC("tc") int short_tstamp(struct __sk_buff *skb) { return AT(__u32, 152); }
SEC("tc") int write_hwtstamp(struct __sk_buff *skb) { AT(__u64, 184) = 1; return 0; }
SEC("tc") int read_padding(struct __sk_buff *skb) { return AT(__u8, 181); }
SEC("tc") int past_the_end(struct __sk_buff *skb) { return AT(__u32, 192); }
SEC("tc") int write_hash(struct __sk_buff *skb) { AT(__u32, 68) = 1; return 0; }
/* and ones it accepts */
SEC("tc") int cb_wide(struct __sk_buff *skb) { AT(__u64, 48) = 0x0102030405060708ULL; return AT(__u8, 49); }
SEC("tc") int narrow_reads(struct __sk_buff *skb) { return AT(__u8, 180) + AT(__u16, 18) + AT(__u8, 3); }
SEC("tc") int classid_halves(struct __sk_buff *skb)
{
    AT(__u32, 72) = 0x12345678;
    return AT(__u16, 74) + AT(__u8, 73) * 0x10000;
}

char LICENSE[] SEC("license") = "GPL";
SEC("tc") int narrow_fields(struct __sk_buff *skb)
{
    /* pkt_type is a byte, protocol 16 bits: wide-enough narrow loads get the field */
    return AT(__u8, 5) + (AT(__u16, 6) << 4) + (AT(__u8, 17) << 8) + (AT(__u8, 18) << 16)
           + (AT(__u16, 16) << 20);
}
SEC("tc") int store_imm(struct __sk_buff *skb)
{
    asm volatile("*(u32 *)(%[ctx] + 8) = 5" :: [ctx]"r"(skb) : "memory");
    return 0;
}
SEC("tc") int atomic_add(struct __sk_buff *skb)
{
    __sync_fetch_and_add(&skb->mark, 1);
    return 0;
}
