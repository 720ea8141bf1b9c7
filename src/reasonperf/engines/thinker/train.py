"""Train tiny-thinker / tiny-instruct from scratch on the CPU: seeded, resumable, exported.

Batch ``s`` holds training examples ``s*B .. s*B+B-1`` of a stream seeded by ``seed``
(each example is built from its index alone), so a resumed run sees exactly the batches an
uninterrupted one would. The loss covers the completion only (the prompt is given).
Every ``checkpoint_every`` steps the model, the optimizer and the loss log are saved
atomically to ``work_dir``; the final model is exported as fp16 safetensors with its
tokenizer, chat template, generation config, loss curve (CSV + PNG) and SHA256SUMS.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from reasonperf.engines.thinker import traces
from reasonperf.engines.thinker.tokenizer import (
    BOS,
    EOS,
    build_tokenizer,
    generation_prompt,
    write_tokenizer,
)

TOKENIZER_SEED = 20261129  # the corpus the tokenizer is fitted to
TOKENIZER_EXAMPLES = 3000
MAX_LEN = 1024


@dataclass(frozen=True)
class TrainConfig:
    kind: str  # "thinker" | "instruct"
    seed: int = 1
    steps: int = 1500
    batch_size: int = 16
    lr: float = 3e-3
    warmup: int = 100
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4  # head_dim 32, which vLLM's CPU attention supports
    num_key_value_heads: int = 2
    level_weights: tuple[float, ...] = (3.0, 2.5, 2.0, 1.5, 1.0)
    checkpoint_every: int = 50
    threads: int = 1  # under load, two OpenMP threads on two shared cores spin

    @property
    def thinker(self) -> bool:
        return self.kind == "thinker"


def fitted_tokenizer() -> Any:
    """The tokenizer both models share, fitted to a fixed corpus of thinker traces."""
    corpus = []
    for i in range(TOKENIZER_EXAMPLES):
        level = traces.level_for(i, TOKENIZER_SEED, (1, 1, 1, 1, 1))
        ex = traces.example("thinker", i, level, TOKENIZER_SEED)
        corpus.append(generation_prompt(ex.user, thinker=True) + ex.completion + EOS)
    return build_tokenizer(corpus)


def encode_example(tok: Any, cfg: TrainConfig, index: int, level: int) -> tuple[list[int], int]:
    """Token ids of example ``index`` (at ``level``) and where its completion starts."""
    ex = traces.example(cfg.kind, index, level, cfg.seed)
    prompt = tok.encode(generation_prompt(ex.user, cfg.thinker)).ids
    completion = tok.encode(ex.completion + EOS).ids
    return (prompt + completion)[:MAX_LEN], len(prompt)


def make_batch(tok: Any, cfg: TrainConfig, step: int) -> dict[str, Any]:
    import torch

    # One level per batch: similar lengths, so little padding.
    level = traces.level_for(step, cfg.seed, cfg.level_weights)
    first = step * cfg.batch_size
    rows = [encode_example(tok, cfg, first + j, level) for j in range(cfg.batch_size)]
    width = max(len(ids) for ids, _ in rows)
    pad = tok.token_to_id(BOS)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (ids, start) in enumerate(rows):
        t = torch.tensor(ids)
        input_ids[r, : len(ids)] = t
        labels[r, start: len(ids)] = t[start:]
        mask[r, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def build_model(tok: Any, cfg: TrainConfig) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=cfg.hidden_size // cfg.num_attention_heads,
        max_position_embeddings=MAX_LEN,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
        pad_token_id=tok.token_to_id(BOS),
        attention_dropout=0.0,
    )
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(config)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))


def _save_checkpoint(path: Path, model: Any, opt: Any, step: int, log: list[dict[str, float]]) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "model": model.state_dict(), "opt": opt.state_dict(), "log": log}, tmp)
    os.replace(tmp, path)


def train(cfg: TrainConfig, work_dir: Path, out_dir: Path, progress: bool = True) -> Path:
    """Train (resuming from ``work_dir/checkpoint.pt`` if present), then export to out_dir."""
    import torch
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    work_dir.mkdir(parents=True, exist_ok=True)
    tok = fitted_tokenizer()
    model = build_model(tok, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=0.01)
    ckpt = work_dir / "checkpoint.pt"
    start, log = 0, []
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start, log = state["step"], state["log"]
    (work_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    model.train()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress,
               desc=f"train {cfg.kind}", mininterval=5.0)
    t0 = time.monotonic() - (log[-1]["elapsed_s"] if log else 0.0)  # continues on resume
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = make_batch(tok, cfg, step)
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        log.append({"step": step + 1, "loss": float(loss.detach()), "lr": lr_at(step, cfg),
                    "elapsed_s": time.monotonic() - t0})
        bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            _save_checkpoint(ckpt, model, opt, step + 1, log)
    export(model, tok, cfg, log, out_dir)
    return out_dir


def export(model: Any, tok: Any, cfg: TrainConfig, log: list[dict[str, float]], out: Path) -> None:
    """fp16 safetensors + tokenizer + generation config + loss curve + SHA256SUMS."""
    import torch
    from transformers import GenerationConfig

    from reasonperf.engines.thinker.shipped import write_checksums

    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.token_to_id(BOS), eos_token_id=tok.token_to_id(EOS),
        pad_token_id=tok.token_to_id(BOS), temperature=0.6, do_sample=True,
    )
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    write_tokenizer(tok, out, thinker=cfg.thinker, max_len=MAX_LEN)
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    write_loss_curve(log, out)
    write_checksums(out)


def write_loss_curve(log: list[dict[str, float]], out: Path) -> None:
    with (out / "loss.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["step", "loss", "lr", "elapsed_s"])
        writer.writeheader()
        writer.writerows({k: round(v, 6) for k, v in row.items()} for row in log)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
    ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (completion tokens)")
    ax.set_title(out.name)
    fig.tight_layout()
    fig.savefig(out / "loss.png", metadata={"Software": None})
    plt.close(fig)


DEFAULT_CONFIGS = {
    "tiny-thinker": TrainConfig(kind="thinker", steps=2100),
    "tiny-instruct": TrainConfig(kind="instruct", steps=400),
}


def train_shipped(names: list[str], out_root: Path, work_root: Path, steps: int | None = None,
                  progress: bool = True) -> dict[str, Path]:
    """Retrain the named shipped models (the `reasonperf engine train-thinker` command)."""
    done = {}
    for name in names:
        cfg = DEFAULT_CONFIGS[name]
        if steps is not None:
            cfg = replace(cfg, steps=steps)
        done[name] = train(cfg, work_root / name, out_root / name, progress=progress)
    return done


def export_checkpoint(cfg: TrainConfig, work_dir: Path, out_dir: Path) -> int:
    """Export the latest checkpoint of a run (to look at a model while it trains); its step."""
    import torch

    tok = fitted_tokenizer()
    model = build_model(tok, cfg)
    state = torch.load(work_dir / "checkpoint.pt", weights_only=False)
    model.load_state_dict(state["model"])
    export(model, tok, cfg, state["log"], out_dir)
    return int(state["step"])
