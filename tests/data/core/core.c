/* CO-RE test object: relocations against xsim's model of kernel structs (model.btf). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct __sk_buff___mine { __u32 len; __u32 pkt_type; __u32 mark; } __attribute__((preserve_access_index));
struct task_struct { int pid; int tgid; } __attribute__((preserve_access_index));
struct iphdr___x { __u8 ihl:4, version:4; __u8 tos; } __attribute__((preserve_access_index));
SEC("socket") int reader(struct __sk_buff___mine *skb) { return skb->mark + skb->len; }
SEC("socket") int exists(struct __sk_buff___mine *skb) {
  return __builtin_preserve_field_info(skb->mark, 2) * 10 + __builtin_preserve_field_info(((struct task_struct *)skb)->pid, 2); }
SEC("socket") int bad(struct task_struct *t) { return t->tgid; }
SEC("socket") int bits(struct iphdr___x *ip) { return __builtin_preserve_field_info(ip->version, 0) * 100 + __builtin_preserve_field_info(ip->version, 4) * 10 + __builtin_preserve_field_info(ip->version, 5); }
char LICENSE[] SEC("license") = "GPL";
/* a local layout that differs from the kernel's: mark first, len second */
struct __sk_buff___old { __u32 mark; __u32 len; } __attribute__((preserve_access_index));
SEC("socket") int moved(struct __sk_buff___old *skb) { return skb->len * 1000 + skb->mark; }
enum xdp_action___local { XDP_PASS___local = 7 };
SEC("socket") int enumval(void *ctx) {
  return __builtin_preserve_enum_value(*(typeof(enum xdp_action___local) *)XDP_PASS___local, 1); }
