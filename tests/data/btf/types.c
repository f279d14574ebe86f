/* BTF test input: one of each BTF kind, global data in .data/.bss/.rodata,
 * several functions (func_info) and their line info.
 * Rebuild with build.sh; tests/test_btf.py asserts on the parsed values. */
typedef unsigned int u32;
typedef u32 my_u32;            /* typedef chain: my_u32 -> u32 -> unsigned int */
typedef my_u32 chain_t;
typedef unsigned long long u64;

struct bits {                  /* bitfields: kind_flag set, bit offsets + sizes */
	u32 a : 3;
	u32 b : 5;
	u32 c;
	unsigned char d : 1;
	u64 e : 40;
};

union either {
	u32 word;
	unsigned char bytes[4];
	u64 wide;
};

enum color { RED = 0, GREEN = 1, BLUE = 7 };
enum neg { MINUS_ONE = -1, ZERO = 0 };
enum wide64 { SMALL = 1, HUGE = 0x123456789aULL };

struct fwd_only;               /* never defined: BTF_KIND_FWD */

typedef int (*handler_t)(int, struct fwd_only *);

struct tagged {
	int plain;
	int __attribute__((btf_type_tag("user"))) *uptr;
	int marked __attribute__((btf_decl_tag("note")));
};

struct holder {
	chain_t id;
	union either u;
	enum color col;
	int grid[2][3];
	handler_t cb;
	const volatile int *cvp;
	struct bits bf;
	struct tagged tg;
	enum wide64 w;
	enum neg n;
	float f;
};

struct holder g_holder = { .id = 5 };          /* .data */
int g_counter;                                 /* .bss */
const int g_table[4] = { 1, 2, 3, 4 };         /* .rodata */
volatile u64 g_seen = 9;                       /* .data */

static __attribute__((noinline)) int helper_add(int *restrict a, int b)
{
	return *a + b;
}

__attribute__((section("xdp"), used)) int prog_main(void *ctx)
{
	int x = g_table[1];
	g_counter += helper_add(&x, 3);
	return g_holder.id + (int)g_seen;
}

__attribute__((section("tc"), used)) int prog_other(void *ctx)
{
	return g_counter;
}
