/* Byte-order conversions for BPF programs.  Each is a compiler builtin, so it
 * folds to a constant when its argument is one (usable in case labels and
 * static initializers).  xsim's own text.
 */
#ifndef __XSIM_BPF_ENDIAN_H
#define __XSIM_BPF_ENDIAN_H

#include <linux/types.h>

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define __xsim_be16(x)	((__u16)__builtin_bswap16((__u16)(x)))
#define __xsim_be32(x)	((__u32)__builtin_bswap32((__u32)(x)))
#define __xsim_be64(x)	((__u64)__builtin_bswap64((__u64)(x)))
#elif __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define __xsim_be16(x)	((__u16)(x))
#define __xsim_be32(x)	((__u32)(x))
#define __xsim_be64(x)	((__u64)(x))
#else
#error "unknown byte order"
#endif

#define bpf_htons(x)		__xsim_be16(x)
#define bpf_ntohs(x)		__xsim_be16(x)
#define bpf_htonl(x)		__xsim_be32(x)
#define bpf_ntohl(x)		__xsim_be32(x)
#define bpf_cpu_to_be16(x)	__xsim_be16(x)
#define bpf_be16_to_cpu(x)	__xsim_be16(x)
#define bpf_cpu_to_be32(x)	__xsim_be32(x)
#define bpf_be32_to_cpu(x)	__xsim_be32(x)
#define bpf_cpu_to_be64(x)	__xsim_be64(x)
#define bpf_be64_to_cpu(x)	__xsim_be64(x)

#endif /* __XSIM_BPF_ENDIAN_H */
