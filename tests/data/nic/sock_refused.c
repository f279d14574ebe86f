/* Socket filter programs the verifier refuses for their context accesses. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define AT(type, off) (*(volatile type *)((char *)skb + (off)))

SEC("socket") int read_data(struct __sk_buff *skb) { return AT(__u32, 76); }
SEC("socket") int write_mark(struct __sk_buff *skb) { AT(__u32, 8) = 1; return 0; }
SEC("socket") int read_classid(struct __sk_buff *skb) { return AT(__u32, 72); }
SEC("socket") int read_tstamp(struct __sk_buff *skb) { return AT(__u64, 152); }
SEC("socket") int read_wire_len(struct __sk_buff *skb) { return AT(__u32, 160); }

char LICENSE[] SEC("license") = "GPL";
