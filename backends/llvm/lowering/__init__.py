"""The CPU backend's lowering: kernel level -> loops level (scf/memref/arith/math).

The ``split-full-reductions`` and ``lower-to-loops`` passes (registered under
those names in :mod:`irc.passes.registry`) and the helpers they are built from.
"""
