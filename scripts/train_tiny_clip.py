"""Train the tiny CLIP used by the semantic tests (``napari_sclip.testing``), CPU only.

Why: no real CLIP weights can be downloaded where the tests run, yet the tests must check meaning
(the right word on the right region). This script trains a ~4 M parameter ``open_clip.CLIP`` (4-layer
ViT of width 128 with 8-px patches on 64-px images; 4-layer text tower of width 64 with the standard
CLIP BPE tokenizer and a 32-token context) on the procedurally generated captioned images of
``napari_sclip.testing.scenes``, whose captions are drawn from the engine's 80 ImageNet templates.

The loss is CLIP's symmetric contrastive loss, with each row's target spread evenly over the in-batch
pairs whose images show the same set of concepts (ten concepts in a batch of 128 give many such
duplicates; a one-hot target would push them apart).

The image embedding is the mean of the patch tokens (``pool_type="avg"``), not the CLS token as in
CLIP: with CLS pooling nothing trains the patch tokens' path through the last block, and in the
~15 CPU-minutes available they stay poorly aligned with the text (held-out mIoU 0.56 with SCLIP
attention after 1,000 steps, against 0.88 with mean pooling after 150). ``--pool tok`` trains the
CLIP-style variant. Dense inference is unchanged: the engine projects every token, CLS included.

The result is saved in half precision with its architecture in the safetensors metadata (format
``napari-sclip/open_clip-v1``), so ``napari_sclip.load_model(pretrained=path, name=None)`` rebuilds it.

Usage::

    python scripts/train_tiny_clip.py                      # the committed model, ~15 min on one core
    python scripts/train_tiny_clip.py --steps 60 --out /tmp/smoke.safetensors   # smoke run

Same seed, same thread count, same torch build -> the same weights (compare the printed digest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F

from napari_sclip.checkpoints import save_checkpoint
from napari_sclip.templates import imagenet_templates
from napari_sclip.testing.scenes import (
    CONCEPTS,
    TRAIN_STREAM,
    make_scene,
    make_training_batch,
    render_concepts,
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_SIZE = 64
CONTEXT_LENGTH = 32

CONFIG: dict = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": IMAGE_SIZE,
        "patch_size": 8,
        "width": 128,
        "layers": 4,
        "head_width": 32,
        "mlp_ratio": 4.0,
        "pool_type": "avg",
    },
    "text_cfg": {
        "context_length": CONTEXT_LENGTH,
        "vocab_size": 49408,
        "width": 64,
        "heads": 4,
        "layers": 4,
    },
    "quick_gelu": False,
}
DEFAULT_OUT = (
    Path(__file__).resolve().parents[1] / "src/napari_sclip/testing/tiny_shapes_clip.safetensors"
)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float, normalised with CLIP's mean and std."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    scale: torch.Tensor,
    same: torch.Tensor,
) -> torch.Tensor:
    """Symmetric CLIP loss; ``same[i, j]`` marks pairs whose images show the same concept set, and the
    target of each row is spread evenly over them (the diagonal alone when there are no duplicates)."""
    logits = scale * image_features @ text_features.t()
    target = same / same.sum(dim=1, keepdim=True)
    loss_i = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t = -(target * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return (loss_i + loss_t) / 2


@torch.no_grad()
def class_embeddings(model: open_clip.CLIP, tokenizer, words: list[str]) -> torch.Tensor:
    """Each word's text embedding averaged over the 80 templates (as the engine does)."""
    out = []
    for word in words:
        tokens = tokenizer([t.format(word) for t in imagenet_templates()])
        emb = F.normalize(model.encode_text(tokens), dim=-1).mean(dim=0)
        out.append(F.normalize(emb, dim=-1))
    return torch.stack(out)


@torch.no_grad()
def patch_features(model: open_clip.CLIP, x: torch.Tensor, attention: str) -> torch.Tensor:
    """Normalised patch features (N, G*G, D) with the last block's attention ``vanilla`` or ``sclip``
    (q q^T + k k^T softmaxes, residual and FFN kept). A diagnostic only; the engine has its own."""
    v = model.visual
    h = v._embeds(x)
    for block in v.transformer.resblocks[:-1]:
        h = block(h)
    last = v.transformer.resblocks[-1]
    y = last.ln_1(h)
    attn = last.attn
    q, k, val = F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    n, length, width = q.shape
    heads = attn.num_heads

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(n, length, heads, width // heads).transpose(1, 2)

    q, k, val = split(q), split(k), split(val)
    s = (width // heads) ** -0.5
    if attention == "sclip":
        a = (q @ q.transpose(-1, -2) * s).softmax(-1) + (k @ k.transpose(-1, -2) * s).softmax(-1)
    else:
        a = (q @ k.transpose(-1, -2) * s).softmax(-1)
    o = (a @ val).transpose(1, 2).reshape(n, length, width)
    h = h + last.ls_1(attn.out_proj(o))
    h = h + last.ls_2(last.mlp(last.ln_2(h)))
    feats = v.ln_post(h) @ v.proj
    return F.normalize(feats[:, 1:], dim=-1)


@torch.no_grad()
def diagnostics(model: open_clip.CLIP, tokenizer, n: int = 64) -> dict[str, float]:
    """Quick held-out checks without the engine: zero-shot accuracy on single-concept images, and
    patch accuracy (vanilla vs sclip) on 64-px scenes, all with the 80-template class embeddings."""
    model.eval()
    text = class_embeddings(model, tokenizer, list(CONCEPTS))
    rng = np.random.default_rng([2, 0])
    labels = rng.integers(0, len(CONCEPTS), n)
    singles = np.stack(
        [render_concepts(rng, np.zeros((IMAGE_SIZE,) * 2, int), [CONCEPTS[i]]) for i in labels]
    )
    pred = (F.normalize(model.encode_image(to_tensor(singles)), dim=-1) @ text.t()).argmax(1)
    out = {"zero_shot_acc": float((pred.numpy() == labels).mean())}
    scenes = [make_scene(10_000 + i, IMAGE_SIZE) for i in range(n)]
    x = to_tensor(np.stack([s.image for s in scenes]))
    grid = IMAGE_SIZE // CONFIG["vision_cfg"]["patch_size"]
    for attention in ("vanilla", "sclip"):
        logits = patch_features(model, x, attention) @ text.t()  # (N, G*G, C)
        correct = 0
        for s, lg in zip(scenes, logits, strict=True):
            allowed = [CONCEPTS.index(c) for c in s.class_names]
            choice = lg[:, allowed].argmax(-1).view(grid, grid).numpy() + 1
            centre = s.mask[grid // 2 :: IMAGE_SIZE // grid, grid // 2 :: IMAGE_SIZE // grid]
            correct += int((choice == centre).sum())
        out[f"patch_acc_{attention}"] = correct / (n * grid * grid)
    model.train()
    return out


def save(model: open_clip.CLIP, path: Path, args: argparse.Namespace, description: str) -> str:
    """Write fp16 weights + config metadata; return the SHA-256 of the tensors for reproducibility."""
    extra = {
        "seed": str(args.seed),
        "steps": str(args.steps),
        "batch": str(args.batch),
        "threads": str(args.threads),
        "mix": args.mix,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
    }
    tensors = save_checkpoint(
        model, path, CONFIG, name="tiny-shapes-clip", description=description, half=True, extra=extra
    )
    digest = hashlib.sha256()
    for key in sorted(tensors):
        digest.update(key.encode())
        digest.update(tensors[key].numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 by default: on a shared 2-core machine spinning OpenMP threads cost "
        "more than they gain, and the weights depend (slightly) on the thread count",
    )
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument(
        "--mix",
        default="0.4,0.4,0.2",
        help="probabilities of a training image showing 1, 2, 3... concepts",
    )
    parser.add_argument(
        "--pool",
        choices=("avg", "tok"),
        default="avg",
        help="image embedding = mean of the patch tokens (avg) or the CLS token (tok, as in CLIP)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng([TRAIN_STREAM, args.seed])
    mix = tuple(float(v) for v in args.mix.split(","))
    CONFIG["vision_cfg"]["pool_type"] = args.pool
    model = open_clip.CLIP(**CONFIG)
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=CONTEXT_LENGTH)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"seed {args.seed}, steps {args.steps}, batch {args.batch}, threads {args.threads}, "
        f"params {n_params / 1e6:.2f} M"
    )

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)
    ]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * progress))

    start = time.perf_counter()
    window: list[float] = []
    curve: list[tuple[int, float]] = []
    model.train()
    for step in range(args.steps):
        images, captions, sets = make_training_batch(
            rng, args.batch, IMAGE_SIZE, concept_count_weights=mix
        )
        same = torch.tensor([[a == b for b in sets] for a in sets], dtype=torch.float32)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        image_features = F.normalize(model.encode_image(to_tensor(images)), dim=-1)
        text_features = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)
        loss = contrastive_loss(image_features, text_features, model.logit_scale.exp(), same)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        window.append(loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            mean = float(np.mean(window))
            curve.append((step + 1, mean))
            window.clear()
            print(
                f"step {step + 1:5d}  loss {mean:.3f}  scale {model.logit_scale.exp().item():5.1f}"
                f"  lr {lr_at(step):.2e}  {time.perf_counter() - start:6.0f} s",
                flush=True,
            )
    elapsed = time.perf_counter() - start
    print(f"trained {args.steps} steps in {elapsed:.0f} s ({elapsed / 60:.1f} min)")
    print("loss curve:", ", ".join(f"{s}:{v:.2f}" for s, v in curve[:: max(1, len(curve) // 10)]))
    print("diagnostics:", json.dumps(diagnostics(model, tokenizer)))
    description = (
        f"Tiny CLIP for napari-sclip tests, trained by scripts/train_tiny_clip.py (seed {args.seed}, "
        f"{args.steps} steps of batch {args.batch}, concept-count mix {args.mix}) on synthetic images of the concepts "
        f"{', '.join(CONCEPTS)} with captions from the 80 ImageNet templates. 64 px input, 8 px patches."
    )
    digest = save(model, args.out, args, description)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), tensors sha256 {digest}")


if __name__ == "__main__":
    main()
