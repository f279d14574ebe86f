/* dns_filter: a socket filter that keeps IPv4 UDP datagrams to or from port 53
 * (the first 512 bytes) and drops everything else, with classic LD_ABS loads
 * from the network header, as tcpdump's filters compile to.                 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

SEC("socket")
int dns_filter(struct __sk_buff *skb)
{
    if (skb->protocol != __builtin_bswap16(0x0800))
        return 0;
    if (load_byte(skb, 9) != IPPROTO_UDP)
        return 0;
    __u32 ihl = (load_byte(skb, 0) & 0xf) * 4;
    if (load_half(skb, ihl) != 53 && load_half(skb, ihl + 2) != 53)
        return 0;
    return 512;
}

char LICENSE[] SEC("license") = "GPL";
