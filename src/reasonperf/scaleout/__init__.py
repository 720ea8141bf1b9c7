"""Sharded runs: one global schedule dealt to shard processes, merged into one run.

- ``clock``: shard clock offsets against the coordinator (ping-pong, min-RTT).
- ``shard``: what one shard process needs (its slice, T0, its wall clock).
- ``local``: the ``--workers N`` launcher (multiprocessing spawn).
- ``merge``: shard run directories -> one run directory (``reasonperf merge``).
"""
