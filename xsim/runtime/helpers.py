"""The helper registry: helpers by id, each a Python function of one call.

A helper gets a :class:`HelperCall` (its five arguments, checked access to
the program's memory, and a way to end the program) and returns r0.  Hooks
and the loader add their own helpers to a registry; a program calling an id
that no registry holds stops with a :class:`~xsim.errors.HelperError` naming
the id, never with a made-up value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..isa import interp as ip

if TYPE_CHECKING:
    from .env import RunEnv
    from .memory import AddressSpace

U64_MASK = (1 << 64) - 1
#: A helper returns this to leave r0 as it was (a failed tail call does).
KEEP_R0 = object()
#: The kernel's MAX_TAIL_CALL_CNT: a run may make at most this many tail calls.
MAX_TAIL_CALLS = ip.MAX_TAIL_CALLS


class HelperCall:
    """What a helper sees of the program that called it."""

    __slots__ = ("args", "pc", "space", "env", "stop_value", "tail_calls", "tail_target",
                 "_invoke", "_words")

    def __init__(self, args: tuple[int, int, int, int, int], pc: int, space: AddressSpace,
                 env: RunEnv, tail_calls: int = 0,
                 invoke: Callable[..., int] | None = None, words: Any = None) -> None:
        self._invoke = invoke
        self._words = words         # the calling program's state words (interp.S_*)
        self.args = args
        self.pc = pc
        self.space = space
        self.env = env
        self.stop_value: int | None = None
        #: tail calls this run has made so far, and the one this call asks for
        self.tail_calls = tail_calls
        self.tail_target: object | None = None

    def read(self, address: int, size: int) -> bytes:
        """Bytes of the program's memory; a bad address raises MemoryAccessError."""
        return self.space.read(address, size, self.pc)

    def write(self, address: int, data: bytes) -> None:
        self.space.write(address, data, self.pc)

    def owner(self, address: int) -> object | None:
        """What owns the region at ``address`` (a map, for a map pointer), or None."""
        return self.space.owner_at(address)

    def call_function(self, pointer: int, *args: int) -> int:
        """Call the program's subprogram at ``pointer`` (a callback) with r1.. = args; its r0."""
        if self._invoke is None:
            raise RuntimeError("this helper call cannot run callbacks")
        return self._invoke(pointer, *args)

    def tail_call(self, program: object) -> None:
        """Go on in ``program`` (an xsim Program sharing this address space) from its pc 0."""
        self.tail_target = program

    def stop(self, r0: int) -> None:
        """End the program after this call, with ``r0`` as its return value."""
        self.stop_value = r0 & U64_MASK

    def redirect(self, kind: int, to: int) -> None:
        """Where the packet goes (interp.REDIRECT_*), in the words the core's redirect
        helpers write too, so that the run's last call says it whichever side served it."""
        if self._words is None:
            raise RuntimeError("this helper call cannot redirect")
        self._words[ip.S_REDIRECT] = kind
        self._words[ip.S_REDIRECT_TO] = to


HelperFn = Callable[[HelperCall], int]


@dataclass(frozen=True)
class Helper:
    id: int
    name: str
    fn: HelperFn
    #: the interpreter's core serves this helper itself (one of ``interp.CORE_IDS``),
    #: ``fn`` being its reference and taking the calls the core leaves
    core: bool = False


@dataclass
class HelperRegistry:
    """Helpers by id.  ``registry.register(5, "unwind")(fn)`` or ``.add(Helper(...))``."""

    helpers: dict[int, Helper] = field(default_factory=dict)
    #: where the hook's context keeps its packet pointers (data, data_end, data_meta,
    #: and XDP's hard start), for the core's helpers that use them; 0: it keeps none
    ctx_ptrs: int = 0

    def add(self, helper: Helper) -> None:
        self.helpers[helper.id] = helper

    def register(self, helper_id: int, name: str,
                 core: bool = False) -> Callable[[HelperFn], HelperFn]:
        def deco(fn: HelperFn) -> HelperFn:
            self.add(Helper(helper_id, name, fn, core))
            return fn
        return deco

    def kernel(self, name: str, core: bool = False) -> Callable[[HelperFn], HelperFn]:
        """Register a kernel helper by its name, with its id from the helper table."""
        from .helper_table import BY_NAME
        info = BY_NAME.get(name)
        if info is None:
            raise KeyError(f"the kernel has no helper named {name!r}")
        return self.register(info.id, info.name, core)

    def get(self, helper_id: int) -> Helper | None:
        return self.helpers.get(helper_id)

    def __contains__(self, helper_id: int) -> bool:
        return helper_id in self.helpers
