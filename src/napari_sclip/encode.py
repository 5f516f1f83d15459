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


def encode_batches(model, pixels, boxes: Sequence[Box], options: RunOptions, batch: int, text: torch.Tensor,
                   features: FeatureStore | None = None, first: int = 0, mode_text: torch.Tensor | None = None):  # fmt: skip
    """Yield ``(index of the first window, token logits (B, Q, gh, gw))`` batch by batch. Modes that
    read the vocabulary get ``mode_text`` (the queries in the official names-file order)."""
    for start, crops in crop_batches(pixels, boxes, batch):
        feats = model.dense_features(crops, options.attention, text=mode_text, logit_scale=options.logit_scale,
                                     params=dict(options.mode_params))  # fmt: skip
        if features is not None:
            features.put(first + start, feats)
        yield start, window_logits(feats, text)


def encode_steps(model, pixels, boxes: Sequence[Box], options: RunOptions, text: torch.Tensor,
                 features: FeatureStore | None, done: int, total: int, client=None,
                 mode_text: torch.Tensor | None = None) -> Steps[torch.Tensor]:  # fmt: skip
    """Token logits ``(n, Q, gh, gw)`` of every window, with progress per batch (or per task)."""
    batch = options.batch_size or model.default_batch
    if client is not None:
        return (yield from _distributed(client, model, pixels, boxes, options, batch, (text, mode_text), done, total))
    logits = []
    for start, out in encode_batches(model, pixels, boxes, options, batch, text, features, mode_text=mode_text):
        logits.append(out)
        yield Progress(done + start + len(out), total, "image")
    return torch.cat(logits)


def _task(pixels, boxes, options: RunOptions, batch: int, texts) -> torch.Tensor:
    from distributed import get_worker

    from .cluster import PLUGIN

    model = get_worker().plugins[PLUGIN].model
    text, mode_text = texts
    return torch.cat([out for _, out in encode_batches(model, pixels, boxes, options, batch, text, mode_text=mode_text)])


def _distributed(client, model, pixels, boxes, options, batch, texts, done, total) -> Steps[torch.Tensor]:
    from distributed import as_completed

    from .cluster import register_model

    if getattr(model, "choice", None) is None:
        raise OptionsError("To run on a cluster, load the model by name or file (load_model / ModelChoice), so "
                           "that every worker can load the same one.")  # fmt: skip
    register_model(client, model.choice)
    per_task = batch * max(1, WINDOWS_PER_TASK // batch)  # the same batches as in one process
    shared = client.scatter([pixels, texts], broadcast=True)
    futures = {client.submit(_task, shared[0], boxes[a : a + per_task], options, batch, shared[1], pure=False): a
               for a in range(0, len(boxes), per_task)}  # fmt: skip
    parts, finished = {}, 0
    for future in as_completed(futures):
        parts[futures[future]] = future.result()
        finished += len(parts[futures[future]])
        yield Progress(done + finished, total, "image")
    return torch.cat([parts[a] for a in sorted(parts)])
