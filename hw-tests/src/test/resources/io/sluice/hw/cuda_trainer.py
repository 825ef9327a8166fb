"""A trainer process for CudaDeliveryHwTest: reads a daemon's token dataset through sluice.Dataset
with delivery='cuda' on device 0, checks every token of every batch against the dataset's token
function (DemoDataset.token), then times whole epochs: cuda delivery against shm delivery with the
tensors moved to the GPU by torch (the path a trainer without cuda delivery takes). Prints one JSON
line per measurement and exits non-zero on the first wrong byte.

    python3 cuda_trainer.py CLIENT_DIR URL DATASET BATCH SEQ_LEN SAMPLES
"""

import json
import sys
import time

client_dir, url, name = sys.argv[1], sys.argv[2], sys.argv[3]
batch, seq_len, samples = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
sys.path.insert(0, client_dir)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import sluice  # noqa: E402

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def expected(ids):
    """DemoDataset.token for every position of samples ``ids`` (uint64), as int64 [B, L]."""
    with np.errstate(over="ignore"):
        h = ids * GOLDEN
        base = h ^ (h >> np.uint64(29))
        j = np.arange(seq_len, dtype=np.uint64)
        return ((base[:, None] + np.uint64(31) * j) & np.uint64(0xFFFF)).astype(np.int64)


def check_epoch():
    ds = sluice.Dataset(url, name, batch, rank=0, world_size=1, delivery="cuda", device="cuda:0")
    seen, rows = set(), 0
    for b in ds:
        meta = ds.last_metadata
        if meta.get("delivery") != "cuda":
            raise SystemExit("step %s came by %r, not cuda" % (meta.get("step"), meta.get("delivery")))
        t, ids = b["tokens"], b["sample_id"]
        if not (t.is_cuda and t.dtype == torch.int64 and tuple(t.shape) == (batch, seq_len)):
            raise SystemExit("tokens came as %s %s %s" % (t.device, t.dtype, tuple(t.shape)))
        if not (ids.is_cuda and ids.dtype == torch.int64):
            raise SystemExit("sample_id came as %s %s" % (ids.device, ids.dtype))
        host_ids = ids.cpu().numpy().astype(np.uint64)
        want = expected(host_ids)
        got = t.cpu().numpy()
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)[0]
            raise SystemExit("step %s: sample_id=%d token %d is %d, the file has %d"
                             % (meta.get("step"), host_ids[bad[0]], bad[1], got[bad[0], bad[1]],
                                want[bad[0], bad[1]]))
        seen.update(host_ids.tolist())
        rows += len(host_ids)
    if len(seen) != samples:
        raise SystemExit("the epoch held %d distinct samples, the dataset %d" % (len(seen), samples))
    print(json.dumps({"checked": "every token of every batch", "rows": rows, "samples": samples}),
          flush=True)


def timed(delivery, epoch):
    ds = sluice.Dataset(url, name, batch, rank=0, world_size=1, delivery=delivery,
                        device="cuda:0", epoch=epoch)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    rows = 0
    for b in ds:
        rows += b["tokens"].shape[0]
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if ds.last_metadata.get("delivery") != delivery:
        raise SystemExit("asked %s, got %s" % (delivery, ds.last_metadata.get("delivery")))
    return rows / dt


check_epoch()
rates = {"cuda": [], "shm": []}
for r in range(3):
    for delivery in ("cuda", "shm"):
        rates[delivery].append(timed(delivery, 1 + 2 * r + (delivery == "shm")))
for delivery, xs in rates.items():
    xs.sort()
    med = xs[len(xs) // 2]
    print(json.dumps({"delivery": delivery, "device": torch.cuda.get_device_name(0),
                      "samples_per_s_median": round(med), "samples_per_s": [round(x) for x in xs],
                      "token_bytes_per_s_median": round(med * seq_len * 2)}), flush=True)
