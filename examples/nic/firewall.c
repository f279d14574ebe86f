/* firewall: drop IPv4 packets whose source is in an LPM-trie blocklist.
 *
 * The blocklist maps a prefix (prefixlen + address) to a rule number; each
 * rule counts the packets it dropped in `rule_hits`, and `verdicts` counts
 * passes and drops.  VLAN-tagged frames are looked through; non-IPv4 frames
 * pass.  Run it over the shipped capture:
 *     xsim run examples/nic/firewall.o --pcap examples/nic/traffic.pcap \
 *         --maps-in examples/nic/blocklist.json --out /tmp/passed.pcap        */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct lpm_v4 { __u32 prefixlen; __u32 addr; };

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 1024);
    __type(key, struct lpm_v4);
    __type(value, __u32);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} blocklist SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u64);
} rule_hits SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} verdicts SEC(".maps");

struct vlan_hdr { __be16 tci; __be16 proto; };

static __always_inline int count(__u32 verdict)
{
    __u32 k = verdict == XDP_DROP ? 1 : 0;
    __u64 *n = bpf_map_lookup_elem(&verdicts, &k);
    if (n)
        __sync_fetch_and_add(n, 1);
    return verdict;
}

SEC("xdp")
int firewall(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return count(XDP_DROP);
    __be16 proto = eth->h_proto;
    void *nh = eth + 1;
    if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
        struct vlan_hdr *vlan = nh;
        if ((void *)(vlan + 1) > end)
            return count(XDP_DROP);
        proto = vlan->proto;
        nh = vlan + 1;
    }
    if (proto != bpf_htons(ETH_P_IP))
        return count(XDP_PASS);
    struct iphdr *ip = nh;
    if ((void *)(ip + 1) > end)
        return count(XDP_DROP);
    struct lpm_v4 key = { .prefixlen = 32, .addr = ip->saddr };
    __u32 *rule = bpf_map_lookup_elem(&blocklist, &key);
    if (!rule)
        return count(XDP_PASS);
    __u32 r = *rule & 63;
    __u64 *hits = bpf_map_lookup_elem(&rule_hits, &r);
    if (hits)
        __sync_fetch_and_add(hits, 1);
    return count(XDP_DROP);
}

char LICENSE[] SEC("license") = "GPL";
