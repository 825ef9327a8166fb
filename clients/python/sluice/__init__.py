"""Sluice client: batches from a Sluice daemon over Arrow Flight, as a PyTorch IterableDataset.

    ds = sluice.Dataset("grpc://127.0.0.1:8815", "my-tokens", batch_size=8)
    for batch in ds:            # {"sample_id": int64 [B], "tokens": int64 [B, L], ...}
        ...
"""

from .dataset import Dataset

__version__ = "0.1.0"

__all__ = ["Dataset", "__version__"]
