/* The Ethernet header and the EtherTypes BPF programs test most.
 * xsim's own text; layout and values are the kernel's UAPI.
 */
#ifndef _LINUX_IF_ETHER_H
#define _LINUX_IF_ETHER_H

#include <linux/types.h>

#define ETH_ALEN	6	/* bytes in a MAC address */
#define ETH_TLEN	2	/* bytes in the EtherType */
#define ETH_HLEN	14	/* bytes in the header */
#define ETH_ZLEN	60	/* shortest frame, without the FCS */
#define ETH_DATA_LEN	1500	/* longest payload */
#define ETH_FRAME_LEN	1514	/* longest frame, without the FCS */

#define ETH_P_ALL	0x0003	/* every protocol (packet sockets) */
#define ETH_P_IP	0x0800
#define ETH_P_ARP	0x0806
#define ETH_P_8021Q	0x8100	/* 802.1Q VLAN tag */
#define ETH_P_IPV6	0x86DD
#define ETH_P_MPLS_UC	0x8847
#define ETH_P_MPLS_MC	0x8848
#define ETH_P_8021AD	0x88A8	/* 802.1ad service VLAN tag (QinQ) */

struct ethhdr {
	unsigned char h_dest[ETH_ALEN];
	unsigned char h_source[ETH_ALEN];
	__be16 h_proto;
} __attribute__((packed));

#endif /* _LINUX_IF_ETHER_H */
