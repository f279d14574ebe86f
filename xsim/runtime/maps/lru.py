"""The kernel's LRU for lru_hash and lru_percpu_hash maps (kernel/bpf/bpf_lru_list.c).

A map of ``max_entries`` elements has as many preallocated LRU *nodes*; an
element is a node holding a key.  The kernel does not keep an exact recency
order: it keeps lists of nodes and a reference bit per node, and evicts in
batches.  :class:`KernelLru` follows bpf_lru_list.c function by function (the
names below are the kernel's), on circular doubly linked lists of node
indices like the kernel's ``list_head`` (a list's head is its newest end,
``list_add`` puts a node there; scans that look for old nodes start at the
tail).

The common LRU (the default) has one global list set (``active``,
``inactive`` and ``free``) and, per possible CPU, a local ``free`` list and
a local ``pending`` list:

* All nodes start on the global free list.  ``target_free`` is
  ``clamp(max_entries / ncpus / 2, 1, LOCAL_FREE_TARGET = 128)``.
* A new element (``bpf_lru_pop_free`` on CPU ``c``) takes a node from ``c``'s
  local free list and puts it at the head of ``c``'s pending list, reference
  bit clear.  When the local free list is empty it is refilled
  (``bpf_lru_list_pop_free_to_local``): ``c``'s pending nodes are flushed to
  the global lists (oldest first, each to the head of the active list if its
  reference bit is set, else of the inactive list, bit cleared), the global
  lists are rotated, and up to ``target_free`` nodes move to the local free
  list: first from the global free list, then by *shrinking* the inactive
  list, which evicts unreferenced elements from its tail (referenced ones go
  to the active list instead) and, if that frees none, force-evicts the
  oldest element of the inactive (else the active) list regardless of its
  bit.  So one insertion may evict up to ``target_free`` elements at once.
* Rotation: when the inactive list is shorter than the active one, up to
  ``nr_scans`` (128) nodes from the active tail move to the inactive head
  (referenced ones go back to the active head, bit cleared); then up to
  ``nr_scans`` inactive nodes are scanned from ``next_inactive_rotation``
  towards the head, referenced ones moving to the active head.
* If nothing can be refilled (every node sits on some CPU's local lists),
  the node is stolen round-robin from the CPUs' local free lists, else from
  their pending lists (oldest unreferenced first, then oldest at all,
  evicting it), starting at the CPU's ``next_steal``.
* Freeing a node (delete, the old node of a replaced element, or a failed
  update that had already taken one) puts a pending node back on the local
  free list of the CPU that took it, and any other node on the global free
  list.

The per-CPU LRU (BPF_F_NO_COMMON_LRU) gives CPU ``c`` the nodes
``[c * n, (c + 1) * n)`` (``n = max_entries / ncpus``) and a list set of its
own, ``nr_scans`` 4: a new element on ``c`` rotates ``c``'s lists, shrinks
``c``'s inactive list by up to 4 nodes (``PERCPU_FREE_TARGET``) when ``c``'s
free list is empty, and puts the node at the head of ``c``'s inactive list.

The reference bit is set by program lookups (``bpf_map_lookup_elem``,
``bpf_map_lookup_percpu_elem``), on the new node of an lru_hash update that
replaces an existing key, and on the existing node of an lru_percpu_hash
update of an existing key.  Syscall lookups do not set it.

Checked against Linux 6.18 with 2 possible CPUs, operations from programs on
either CPU and from the syscall side (tests/test_lru_differential.py).  Not
modelled: lock contention (the kernel's rqspinlock can fail and then
flags a node ``pending_free``, or makes an update fail with -EBUSY/-ENOMEM),
and the order of nodes within a free list (free nodes hold nothing, so it
cannot be observed).
"""
from __future__ import annotations

from typing import Callable

#: enum bpf_lru_list_type
ACTIVE, INACTIVE, FREE, LOCAL_FREE, LOCAL_PENDING = range(5)
TYPE_NAMES = ("active", "inactive", "free", "local_free", "pending")
LOCAL_FREE_TARGET = 128
LOCAL_NR_SCANS = LOCAL_FREE_TARGET
PERCPU_FREE_TARGET = 4
PERCPU_NR_SCANS = PERCPU_FREE_TARGET


class _LruList:
    """struct bpf_lru_list: the heads (sentinels) of active, inactive and free, the
    counts of active and inactive, and where the next inactive rotation starts."""

    __slots__ = ("heads", "counts", "rotation")

    def __init__(self, heads: list[int]) -> None:
        self.heads = heads
        self.counts = [0, 0]
        self.rotation = heads[INACTIVE]


class _LocalList:
    """struct bpf_lru_locallist: a CPU's free and pending lists and next_steal."""

    __slots__ = ("free", "pending", "next_steal")

    def __init__(self, free: int, pending: int, cpu: int) -> None:
        self.free, self.pending, self.next_steal = free, pending, cpu


class KernelLru:
    """The LRU of one map: ``nr_elems`` nodes (0 .. nr_elems-1) for ``ncpus`` possible
    CPUs; ``percpu`` is BPF_F_NO_COMMON_LRU.

    ``evict(node)`` is the kernel's ``del_from_htab``: remove the element that
    holds ``node`` from the hash table and say whether there was one.
    """

    def __init__(self, nr_elems: int, ncpus: int, percpu: bool,
                 evict: Callable[[int], bool]) -> None:
        self.nr_elems = nr_elems
        self.ncpus = ncpus
        self.percpu = percpu
        self._evict = evict
        nheads = 3 * ncpus if percpu else 3 + 2 * ncpus
        size = nr_elems + nheads
        # every list_head starts linked to itself (INIT_LIST_HEAD)
        self.prev = list(range(size))
        self.next = list(range(size))
        self.type = [FREE] * nr_elems
        self.ref = [0] * nr_elems
        self.cpu = [0] * nr_elems
        heads = iter(range(nr_elems, size))
        if percpu:
            self.nr_scans = PERCPU_NR_SCANS
            self.lists = [_LruList([next(heads) for _ in range(3)]) for _ in range(ncpus)]
            self.locals: list[_LocalList] = []
            self._percpu_populate()
        else:
            self.nr_scans = LOCAL_NR_SCANS
            self.lists = [_LruList([next(heads) for _ in range(3)])]
            self.locals = [_LocalList(next(heads), next(heads), c) for c in range(ncpus)]
            self._common_populate()

    # -- list_head ------------------------------------------------------------------------
    def _del(self, x: int) -> None:
        p, n = self.prev[x], self.next[x]
        self.next[p] = n
        self.prev[n] = p
        self.prev[x] = self.next[x] = x

    def _add(self, x: int, head: int) -> None:
        """list_add: right after ``head`` (the newest end)."""
        n = self.next[head]
        self.prev[x], self.next[x] = head, n
        self.prev[n] = x
        self.next[head] = x

    def _move(self, x: int, head: int) -> None:
        self._del(x)
        self._add(x, head)

    def _empty(self, head: int) -> bool:
        return self.next[head] == head

    def _walk(self, head: int) -> list[int]:
        """The nodes of a list, head (newest) first."""
        out, x = [], self.next[head]
        while x != head:
            out.append(x)
            x = self.next[x]
        return out

    # -- populate -------------------------------------------------------------------------
    def _common_populate(self) -> None:
        free = self.lists[0].heads[FREE]
        for i in range(self.nr_elems):
            self._add(i, free)
        self.target_free = min(max(self.nr_elems // self.ncpus // 2, 1), LOCAL_FREE_TARGET)

    def _percpu_populate(self) -> None:
        pcpu_entries = self.nr_elems // self.ncpus
        self.target_free = PERCPU_FREE_TARGET
        i = 0
        for c in range(self.ncpus):
            while True:
                self.cpu[i] = c
                self._add(i, self.lists[c].heads[FREE])
                i += 1
                if i == self.nr_elems:
                    return
                if i % pcpu_entries == 0:
                    break

    # -- node moves -----------------------------------------------------------------------
    def _count(self, l: _LruList, t: int, d: int) -> None:
        if t < 2:
            l.counts[t] += d

    def _node_move_to_free(self, l: _LruList, node: int, free_head: int, t: int) -> None:
        if node == l.rotation:
            l.rotation = self.prev[node]
        self._count(l, self.type[node], -1)
        self.type[node] = t
        self._move(node, free_head)

    def _node_move_in(self, l: _LruList, node: int, t: int) -> None:
        """From a local (pending) list into ``l``'s list ``t``."""
        self._count(l, t, 1)
        self.type[node] = t
        self.ref[node] = 0
        self._move(node, l.heads[t])

    def _node_move(self, l: _LruList, node: int, t: int) -> None:
        """Within ``l``'s lists: to the head of list ``t``, reference bit cleared."""
        if self.type[node] != t:
            self._count(l, self.type[node], -1)
            self._count(l, t, 1)
            self.type[node] = t
        self.ref[node] = 0
        if node == l.rotation:
            l.rotation = self.prev[node]
        self._move(node, l.heads[t])

    # -- rotation and shrinking -------------------------------------------------------------
    def _rotate_active(self, l: _LruList) -> None:
        active = l.heads[ACTIVE]
        first = self.next[active]
        node, i = self.prev[active], 0
        while node != active:
            tmp = self.prev[node]
            self._node_move(l, node, ACTIVE if self.ref[node] else INACTIVE)
            i += 1
            if i == self.nr_scans or node == first:
                break
            node = tmp

    def _rotate_inactive(self, l: _LruList) -> None:
        inactive = l.heads[INACTIVE]
        if self._empty(inactive):
            return
        last = self.next[l.rotation]
        if last == inactive:
            last = self.next[last]
        cur, nxt, i = l.rotation, inactive, 0
        while i < self.nr_scans:
            if cur == inactive:
                cur = self.prev[cur]
                continue
            nxt = self.prev[cur]
            if self.ref[cur]:
                self._node_move(l, cur, ACTIVE)
            if cur == last:
                break
            cur = nxt
            i += 1
        l.rotation = nxt

    def _rotate(self, l: _LruList) -> None:
        if l.counts[INACTIVE] < l.counts[ACTIVE]:
            self._rotate_active(l)
        self._rotate_inactive(l)

    def _shrink_inactive(self, l: _LruList, tgt: int, free_head: int, t: int) -> int:
        inactive = l.heads[INACTIVE]
        node, done, i = self.prev[inactive], 0, 0
        while node != inactive:
            tmp = self.prev[node]
            if self.ref[node]:
                self._node_move(l, node, ACTIVE)
            elif self._evict(node):
                self._node_move_to_free(l, node, free_head, t)
                done += 1
                if done == tgt:
                    break
            i += 1
            if i == self.nr_scans:
                break
            node = tmp
        return done

    def _shrink(self, l: _LruList, tgt: int, free_head: int, t: int) -> int:
        done = self._shrink_inactive(l, tgt, free_head, t)
        if done:
            return done
        head = l.heads[INACTIVE] if not self._empty(l.heads[INACTIVE]) else l.heads[ACTIVE]
        node = self.prev[head]
        while node != head:     # force shrink: ignore the reference bit
            tmp = self.prev[node]
            if self._evict(node):
                self._node_move_to_free(l, node, free_head, t)
                return 1
            node = tmp
        return 0

    # -- the common LRU's local lists -----------------------------------------------------
    def _local_flush(self, l: _LruList, loc: _LocalList) -> None:
        node = self.prev[loc.pending]
        while node != loc.pending:
            tmp = self.prev[node]
            self._node_move_in(l, node, ACTIVE if self.ref[node] else INACTIVE)
            node = tmp

    def _pop_free_to_local(self, loc: _LocalList) -> None:
        l = self.lists[0]
        self._local_flush(l, loc)
        self._rotate(l)
        free, nfree = l.heads[FREE], 0
        node = self.next[free]
        while node != free and nfree < self.target_free:
            tmp = self.next[node]
            self._node_move_to_free(l, node, loc.free, LOCAL_FREE)
            nfree += 1
            node = tmp
        if nfree < self.target_free:
            self._shrink(l, self.target_free - nfree, loc.free, LOCAL_FREE)

    def _add_pending(self, loc: _LocalList, cpu: int, node: int) -> None:
        self.cpu[node] = cpu
        self.type[node] = LOCAL_PENDING
        self.ref[node] = 0
        self._move(node, loc.pending)

    def _local_pop_free(self, loc: _LocalList) -> int:
        node = self.next[loc.free]
        if node == loc.free:
            return -1
        self._del(node)
        return node

    def _local_pop_pending(self, loc: _LocalList) -> int:
        for force in (False, True):
            node = self.prev[loc.pending]
            while node != loc.pending:
                if (force or not self.ref[node]) and self._evict(node):
                    self._del(node)
                    return node
                node = self.prev[node]
        return -1

    def _common_pop_free(self, cpu: int) -> int:
        loc = self.locals[cpu]
        node = self._local_pop_free(loc)
        if node < 0:
            self._pop_free_to_local(loc)
            node = self._local_pop_free(loc)
        if node >= 0:
            self._add_pending(loc, cpu, node)
            return node
        first = steal = loc.next_steal
        while True:
            victim = self.locals[steal]
            node = self._local_pop_free(victim)
            if node < 0:
                node = self._local_pop_pending(victim)
            steal = (steal + 1) % self.ncpus
            if node >= 0 or steal == first:
                break
        loc.next_steal = steal
        if node < 0:
            return -1
        self._add_pending(loc, cpu, node)
        return node

    def _percpu_pop_free(self, cpu: int) -> int:
        l = self.lists[cpu]
        self._rotate(l)
        free = l.heads[FREE]
        if self._empty(free):
            self._shrink(l, PERCPU_FREE_TARGET, free, FREE)
        if self._empty(free):
            return -1
        node = self.next[free]
        self.ref[node] = 0
        self._node_move(l, node, INACTIVE)
        return node

    # -- the interface hashtab.c uses ----------------------------------------------------------
    def pop_free(self, cpu: int) -> int:
        """bpf_lru_pop_free on CPU ``cpu``: a node for a new element (evicting elements
        through ``evict`` as the kernel would), or -1 (the kernel's -ENOMEM)."""
        return self._percpu_pop_free(cpu) if self.percpu else self._common_pop_free(cpu)

    def push_free(self, node: int) -> None:
        """bpf_lru_push_free: ``node`` holds no element any more."""
        if self.percpu:
            self._node_move(self.lists[self.cpu[node]], node, FREE)
        elif self.type[node] == LOCAL_PENDING:
            self.type[node] = LOCAL_FREE
            self.ref[node] = 0
            self._move(node, self.locals[self.cpu[node]].free)
        else:
            self._node_move(self.lists[0], node, FREE)

    def set_ref(self, node: int) -> None:
        """bpf_lru_node_set_ref: a program used the element."""
        self.ref[node] = 1

    # -- introspection --------------------------------------------------------------------------
    def state(self) -> dict:
        """The lists as node indices, each newest first: ``{"lists": [{"active", "inactive",
        "free"}, ...], "local": [{"pending", "free", "next_steal"}, ...], "ref": set,
        "target_free": n}`` (one list set, or one per CPU for BPF_F_NO_COMMON_LRU; no
        local lists then)."""
        return {
            "lists": [{TYPE_NAMES[t]: self._walk(l.heads[t]) for t in (ACTIVE, INACTIVE, FREE)}
                      for l in self.lists],
            "local": [{"pending": self._walk(loc.pending), "free": self._walk(loc.free),
                       "next_steal": loc.next_steal} for loc in self.locals],
            "ref": {n for n in range(self.nr_elems) if self.ref[n]},
            "target_free": self.target_free,
        }

    def order(self) -> list[int]:
        """The nodes holding elements, in the order the kernel would look at them for
        eviction: per list set, the inactive list from its tail, then the active list
        from its tail, then (common LRU) each CPU's pending list from its oldest; the
        referenced nodes (which the next shrink spares) after all the others."""
        seq: list[int] = []
        for l in self.lists:
            for t in (INACTIVE, ACTIVE):
                seq += reversed(self._walk(l.heads[t]))
        for loc in self.locals:
            seq += reversed(self._walk(loc.pending))
        return [n for n in seq if not self.ref[n]] + [n for n in seq if self.ref[n]]
