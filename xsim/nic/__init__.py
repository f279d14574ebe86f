"""Networking hooks: XDP (``xsim.nic.xdp``), TC and socket filters (``xsim.nic.skb``).

Importing the package registers its hooks with the runtime, so that
``xsim.load`` rewrites these programs' context accesses and ``test_run``
runs them as BPF_PROG_TEST_RUN does.
"""
from ..runtime.hooks import register_hook
from .xdp import XdpHook

register_hook(XdpHook())
from . import skb  # noqa: E402,F401  (registers the TC and socket-filter hooks)
