/* Shared by the offload-rule test programs: maps and a result-less atomic add. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* clang 22 (-mcpu=v3) turns even an unused __sync_fetch_and_add into a fetching add,
 * which the NFP refuses; this is the BPF_ADD form the NFP takes. */
static __always_inline void xadd64(__u64 *p, __u64 v)
{
    asm volatile("lock *(u64 *)(%[p] + 0) += %[v]" :: [p]"r"(p), [v]"r"(v) : "memory");
}

/* The IPv4 header of an Ethernet frame, or 0. */
static __always_inline struct iphdr *ipv4(void *data, void *end)
{
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
        return 0;
    return ip;
}

char LICENSE[] SEC("license") = "GPL";
