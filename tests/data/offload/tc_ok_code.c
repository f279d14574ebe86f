/* TC_ACT_OK from an offloaded classifier: the NFP cannot tell TC it passed the packet. */
#include "common.h"

SEC("tc")
int tc_ok_code(struct __sk_buff *skb)
{
    return skb->len > 1500 ? TC_ACT_SHOT : TC_ACT_OK;
}
