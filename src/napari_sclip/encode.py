"""The image encoder over all windows: in this process, or spread over a dask cluster.

On a cluster the windows go out in groups; every worker runs the same model (loaded once by a
worker plugin) with the same batches, and sends back the per-window token logits only, so the
result is the one this process would compute. The image features are not kept then (a new
vocabulary needs a new run).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import OptionsError
from .features import FeatureStore
from .options import RunOptions
from .steps import Progress, Steps
from .tiling import Box, crop_batches, window_logits

WINDOWS_PER_TASK = 64


def encode_batches(model, pixels, boxes: Sequence[Box], attention: str, batch: int, text: torch.Tensor,
                   features: FeatureStore | None = None, first: int = 0):  # fmt: skip
    """Yield ``(index of the first window, token logits (B, Q, gh, gw))`` batch by batch."""
    for start, crops in crop_batches(pixels, boxes, batch):
        feats = model.dense_features(crops, attention)
        if features is not None:
            features.put(first + start, feats)
        yield start, window_logits(feats, text)


def encode_steps(model, pixels, boxes: Sequence[Box], options: RunOptions, text: torch.Tensor,
                 features: FeatureStore | None, done: int, total: int, client=None) -> Steps[torch.Tensor]:  # fmt: skip
    """Token logits ``(n, Q, gh, gw)`` of every window, with progress per batch (or per task)."""
    batch = options.batch_size or model.default_batch
    if client is not None:
        return (yield from _distributed(client, model, pixels, boxes, options.attention, batch, text, done, total))
    logits = []
    for start, out in encode_batches(model, pixels, boxes, options.attention, batch, text, features):
        logits.append(out)
        yield Progress(done + start + len(out), total, "image")
    return torch.cat(logits)


def _task(pixels, boxes, attention: str, batch: int, text: torch.Tensor) -> torch.Tensor:
    from distributed import get_worker

    from .cluster import PLUGIN

    model = get_worker().plugins[PLUGIN].model
    return torch.cat([out for _, out in encode_batches(model, pixels, boxes, attention, batch, text)])


def _distributed(client, model, pixels, boxes, attention, batch, text, done, total) -> Steps[torch.Tensor]:
    from distributed import as_completed

    from .cluster import register_model

    if getattr(model, "choice", None) is None:
        raise OptionsError("To run on a cluster, load the model by name or file (load_model / ModelChoice), so "
                           "that every worker can load the same one.")  # fmt: skip
    register_model(client, model.choice)
    per_task = batch * max(1, WINDOWS_PER_TASK // batch)  # the same batches as in one process
    shared = client.scatter([pixels, text], broadcast=True)
    futures = {client.submit(_task, shared[0], boxes[a : a + per_task], attention, batch, shared[1], pure=False): a
               for a in range(0, len(boxes), per_task)}  # fmt: skip
    parts, finished = {}, 0
    for future in as_completed(futures):
        parts[futures[future]] = future.result()
        finished += len(parts[futures[future]])
        yield Progress(done + finished, total, "image")
    return torch.cat([parts[a] for a in sorted(parts)])
