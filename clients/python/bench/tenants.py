"""Does a client that stops reading slow anyone else down? (``./sluice bench tenants``)

One daemon, one token dataset. Job B (seed 1) reads whole epochs through ``sluice.Dataset``,
alone and beside job A (seed 2), whose client takes one batch and then stops reading without
closing its stream, as a hung trainer would. Each round measures both, in A-B-B-A order so that
drift favours neither; each figure is the median over rounds. Prints samples/s for both cases and their ratio.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import delivery  # noqa: E402  (the dataset and daemon helpers of the delivery bench)


def epoch_rate(url, seed, epoch, batch, mode):
    import sluice
    ds = sluice.Dataset(url, "bench", batch, rank=0, world_size=1, seed=seed, epoch=epoch,
                        delivery=mode)
    t0 = time.perf_counter()
    n = sum(b["tokens"].shape[0] for b in ds)
    return n / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(prog="sluice bench tenants", description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=os.path.expanduser("~/.cache/sluice/bench-delivery"))
    p.add_argument("--samples", type=int, default=131072)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--delivery", default="auto", choices=("auto", "cpu", "shm"))
    p.add_argument("--memory-budget", default="2g")
    p.add_argument("--launcher", default=os.environ.get("SLUICE_LAUNCHER",
                                                         os.path.join(delivery.REPO, "sluice")))
    a = p.parse_args(argv)
    root = os.path.join(a.dir, "tokens-%d-%d" % (a.samples, a.seq_len))
    delivery.ensure_dataset(root, a.samples, a.seq_len, a.launcher)
    daemon = delivery.Daemon(a.launcher, root, a.memory_budget)
    import sluice
    alone, beside = [], []
    try:
        epoch_rate(daemon.url, 1, 0, a.batch_size, a.delivery)  # warm-up: JIT, cache, page cache
        epoch = 1
        for r in range(a.rounds):
            # A-B-B-A: half the rounds measure "beside" first, so drift favours neither.
            for case in (("alone", "beside") if r % 2 == 0 else ("beside", "alone")):
                if case == "alone":
                    alone.append(epoch_rate(daemon.url, 1, epoch, a.batch_size, a.delivery))
                else:
                    stalled = sluice.Dataset(daemon.url, "bench", a.batch_size, rank=0,
                                             world_size=1, seed=2, epoch=r, delivery=a.delivery)
                    it = iter(stalled)
                    next(it)  # one batch, then nothing: the stream stays open, its client silent
                    beside.append(epoch_rate(daemon.url, 1, epoch, a.batch_size, a.delivery))
                    it.close()
                epoch += 1
            delivery.log("  round %d/%d  alone %8.0f  beside a stalled client %8.0f samples/s"
                         % (r + 1, a.rounds, alone[-1], beside[-1]))
    finally:
        daemon.stop()
    m_alone, m_beside = statistics.median(alone), statistics.median(beside)
    print("sluice bench tenants: %d samples of %d B, batch %d, delivery %s, median of %d rounds"
          % (a.samples, a.seq_len * 2, a.batch_size, a.delivery, a.rounds))
    print("job B alone                      %10.0f samples/s" % m_alone)
    print("job B beside a stalled job A     %10.0f samples/s" % m_beside)
    print("ratio                            %10.2fx" % (m_beside / m_alone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
