/* BTF test input: CO-RE relocations from __builtin_preserve_access_index. */
struct s { int a; int b; } __attribute__((preserve_access_index));

struct outer {
	int pad;
	struct s inner[2];
} __attribute__((preserve_access_index));

__attribute__((section("kprobe/x"), used)) int core_read(struct s *p, struct outer *o)
{
	return p->b + o->inner[1].a;
}
