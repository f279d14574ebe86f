/* A TC classifier the NFP offload takes: skb->len, data and data_end, constant
 * return codes it maps (TC_ACT_SHOT, TC_ACT_UNSPEC). */
#include "common.h"

SEC("tc")
int ok_tc(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
    struct iphdr *ip = ipv4(data, end);
    if (ip && skb->len > 1500)
        return TC_ACT_SHOT;
    return TC_ACT_UNSPEC;
}
