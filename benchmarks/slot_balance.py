"""How the slot rule balances many threads: a simulation of fastem's slot
claiming (``fastem._parallel.run_slots``) for the cases of the 16-core
measurement (``../shared/scripts/scale16.py``).

Each E-step splits its ``n_blocks`` blocks of rows into ``n_slots``
contiguous slots (``fastem._estep.n_slots_for``); every thread, once awake,
claims the next free slot until none is left; the calling thread starts at
once, pool thread ``i`` after ``i`` wake-ups of ``WAKE_US`` each (they are
woken one after another), and the calling thread finally sums the slot
buffers (``slot_bytes`` each) at ``REDUCE_GBS``.  A block costs the
single-thread time per iteration measured on the 16-core server divided by
the number of blocks.  Printed per case and thread count: the slots, the
slots per thread (fewest-most), the longest idle time of a thread, and the
simulated speed-up over one thread, for the old rule (16 slots) and the
current one.

    python benchmarks/slot_balance.py
"""

import heapq

import numpy as np

from fastem import _config
from fastem._estep import n_slots_for

WAKE_US = 40.0  # waking one pool thread (30-60 us measured on the VMs)
REDUCE_GBS = 10.0  # the calling thread's sum of the slot buffers

#: (name, n, d, K, covariance type, single-thread ms per iteration on the
#: 16-core server, from the issue's table)
CASES = [
    ("full, 2,000,000 x 16, K = 16", 2_000_000, 16, 16, "full", 1123.0),
    ("diag, 4,000,000 x 2, K = 8", 4_000_000, 2, 8, "diag", 99.0),
    ("full, 500,000 x 64, K = 8", 500_000, 64, 8, "full", 1448.0),
]


def slot_bytes(ct, K, d):
    stats2 = {"full": K * d * d, "tied": d * d, "diag": K * d, "spherical": K * d}[ct]
    return 8 * (K + K * d + stats2 + 2)


def simulate(n_blocks, n_slots, threads, block_us, reduce_us, speeds=None):
    """(makespan us, slots per thread, idle us per thread); ``speeds[i]``
    scales thread i's time per block (None: all 1)."""
    sizes = [((s + 1) * n_blocks) // n_slots - (s * n_blocks) // n_slots
             for s in range(n_slots)]
    threads = min(threads, n_slots)
    ready = [(i * WAKE_US, i) for i in range(threads)]  # (free at, thread)
    heapq.heapify(ready)
    taken = [0] * threads
    busy = [0.0] * threads
    for size in sizes:
        t, i = heapq.heappop(ready)
        cost = size * block_us * (1.0 if speeds is None else speeds[i])
        taken[i] += 1
        busy[i] += cost
        heapq.heappush(ready, (t + cost, i))
    end = max(t for t, _ in ready)
    idle = [end - i * WAKE_US - busy[i] for i in range(threads)]
    return end + reduce_us, taken, idle


def main():
    block = _config.BLOCK_SIZE
    print(f"block {block} rows; wake-up {WAKE_US:.0f} us per pool thread; slot sum at "
          f"{REDUCE_GBS:.0f} GB/s")
    for name, n, d, K, ct, ms1 in CASES:
        n_blocks = -(-n // block)
        block_us = ms1 * 1000.0 / n_blocks
        sb = slot_bytes(ct, K, d)
        new = n_slots_for(n, block, sb, 8 * d)
        print(f"\n{name}: {n_blocks} blocks, {sb / 1024:.1f} KiB per slot")
        print(f"  {'threads':>7} {'rule':>5} {'slots':>5} {'per thread':>10} "
              f"{'max idle ms':>11} {'speed-up':>8} | {'uneven threads':>14} "
              f"{'max idle ms':>11} {'speed-up':>8}")
        for threads in (16, 32, 64, 128):
            # uneven: each thread 1 to 2 times slower per block (shared cores,
            # memory, frequency), fixed draws
            uneven = 1.0 + np.random.default_rng(threads).random(threads)
            for rule, ns in (("old", min(16, n_blocks)), ("new", new)):
                reduce_us = ns * sb / (REDUCE_GBS * 1e3)
                end, taken, idle = simulate(n_blocks, ns, threads, block_us, reduce_us)
                end2, taken2, idle2 = simulate(n_blocks, ns, threads, block_us, reduce_us,
                                               uneven)
                # the uneven machine's ideal: all threads busy to the end
                ideal = ms1 * 1000.0 / np.sum(1.0 / uneven[:min(threads, ns)])
                print(f"  {threads:>7} {rule:>5} {ns:>5} {min(taken):>4}-{max(taken):<5} "
                      f"{max(idle) / 1000:>11.2f} {ms1 * 1000.0 / end:>8.1f}x | "
                      f"{min(taken2):>6}-{max(taken2):<7} {max(idle2) / 1000:>11.2f} "
                      f"{ms1 * 1000.0 / end2:>8.1f}x (ideal {ms1 * 1000.0 / ideal:.1f}x)")


if __name__ == "__main__":
    main()
