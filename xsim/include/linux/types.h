/* Fixed-width integer types of the Linux UAPI, for BPF programs built with
 * xsim's headers (xsim's own text; the guard is the kernel's, so that only one
 * of this and a system <linux/types.h> is used).
 */
#ifndef _LINUX_TYPES_H
#define _LINUX_TYPES_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef signed short __s16;
typedef unsigned short __u16;
typedef signed int __s32;
typedef unsigned int __u32;
typedef signed long long __s64;
typedef unsigned long long __u64;

/* Byte-order and checksum annotations: plain integers of the same width. */
typedef __u16 __le16;
typedef __u16 __be16;
typedef __u32 __le32;
typedef __u32 __be32;
typedef __u64 __le64;
typedef __u64 __be64;
typedef __u16 __sum16;
typedef __u32 __wsum;

#define __aligned_u64 __u64 __attribute__((aligned(8)))

#endif /* _LINUX_TYPES_H */
