/* The IPv6 address and the IPv6 extension-header protocol numbers.
 * xsim's own text; layout and values are the kernel's UAPI.
 */
#ifndef _LINUX_IN6_H
#define _LINUX_IN6_H

#include <linux/types.h>

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
};

#define s6_addr		in6_u.u6_addr8
#define s6_addr16	in6_u.u6_addr16
#define s6_addr32	in6_u.u6_addr32

#define IPPROTO_HOPOPTS		0	/* hop-by-hop options */
#define IPPROTO_ROUTING		43
#define IPPROTO_FRAGMENT	44
#define IPPROTO_ICMPV6		58
#define IPPROTO_NONE		59	/* no next header */
#define IPPROTO_DSTOPTS		60	/* destination options */
#define IPPROTO_MH		135	/* mobility header */

#endif /* _LINUX_IN6_H */
