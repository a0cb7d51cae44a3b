"""The stock-PyTorch side of `tpo bench pytorch`: the same LLaVA-Video-shaped model as tpo's, assembled from
transformers' own modules, loaded from the same weights, fed the same inputs.

  SiglipVisionModel -> LLaVA's mm_projector (Linear, GELU, Linear) -> get_2dPool (2x2 average) -> Qwen2ForCausalLM

This is what a user who does not use tpo would run: transformers' modules (sdpa attention, its default), torch's
AdamW, no custom kernels. It is never imported by tpo itself; scripts/bench/setup-venv.sh makes its venv.
"""
from __future__ import annotations

import json
import math
import os
import resource
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, SiglipVisionModel


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    torch.set_num_interop_threads(n)


def peak_rss_mib() -> float:
    # VmHWM: this process's own high-water mark (ru_maxrss carries the parent's RSS at fork across exec).
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StockVideoLM(nn.Module):
    """LLaVA-NeXT's LlavaQwenForCausalLM video path, layer for layer, from transformers' modules."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        text_keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "max_position_embeddings", "rope_theta", "rms_norm_eps",
                     "tie_word_embeddings")
        text = Qwen2Config(**{k: config[k] for k in text_keys if k in config}, attn_implementation="sdpa")
        self.lm = Qwen2ForCausalLM(text)
        self.vision = None
        if "vision_config" in config:
            v = dict(config["vision_config"])
            v.pop("num_hidden_layers_in_checkpoint", None)
            layers = config["vision_config"].get("num_hidden_layers_in_checkpoint", v["num_hidden_layers"])
            v["num_hidden_layers"] = layers
            self.vision = SiglipVisionModel(SiglipVisionConfig(**v, vision_use_head=False, attn_implementation="sdpa"))
            total = config["vision_config"]["num_hidden_layers"]
            select = config.get("mm_vision_select_layer", -2)
            self.select = total + 1 + select if select < 0 else select
            d = config["hidden_size"]
            self.projector = nn.Sequential(nn.Linear(v["hidden_size"], d), nn.GELU(), nn.Linear(d, d))
            self.grid = v["image_size"] // v["patch_size"]
            self.stride = config.get("mm_spatial_pool_stride", 2)
            self.newline = config.get("mm_newline_position", "grid")
            self.image_newline = nn.Parameter(torch.zeros(d)) if "unpad" in config.get("mm_patch_merge_type", "") else None

    @classmethod
    def load(cls, folder: str) -> "StockVideoLM":
        config = json.loads(Path(folder, "config.json").read_text())
        model = cls(config)
        weights = load_file(str(Path(folder, "model.safetensors")))
        state = {}
        # transformers 4 names SiglipVisionModel's weights vision_model.*; transformers 5 drops that prefix.
        tower_prefix = "model.vision_tower.vision_tower."
        if not any(k.startswith("vision.vision_model.") for k in model.state_dict()):
            tower_prefix += "vision_model."
        for key, value in weights.items():
            if key.startswith(tower_prefix):
                state["vision." + key[len(tower_prefix):]] = value
            elif key.startswith("model.mm_projector."):
                state["projector." + key[len("model.mm_projector."):]] = value
            elif key == "model.image_newline":
                state["image_newline"] = value
            else:
                state["lm." + key] = value
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if "rotary_emb" not in k and "position_ids" not in k]
        if missing or unexpected:
            raise ValueError(f"{folder}: missing {missing[:5]}, unexpected {unexpected[:5]}")
        return model

    def encode_video(self, pixels: torch.Tensor) -> torch.Tensor:
        """[F, 3, S, S] -> visual tokens [V, D]: tower (frozen, no graph), projector, 2x2 pool, newlines."""
        with torch.no_grad():
            features = self.vision(pixels, output_hidden_states=True).hidden_states[self.select]
        x = self.projector(features)  # [F, N, D]
        f, n, d = x.shape
        grid = x.view(f, self.grid, self.grid, d).permute(0, 3, 1, 2)
        grid = F.avg_pool2d(grid, self.stride)
        side = grid.shape[-1]
        x = grid.permute(0, 2, 3, 1)  # [F, side, side, D]
        if self.image_newline is not None and self.newline == "grid":
            nl = self.image_newline.view(1, 1, 1, d).expand(f, side, 1, d)
            x = torch.cat([x, nl], 2)
        return x.reshape(-1, d)

    def embed(self, ids: torch.Tensor, video: torch.Tensor | None) -> torch.Tensor:
        """One row of ids (with the -200 id once when there is a video) -> embeddings [L', D]."""
        where = (ids == -200).nonzero()
        if video is None or len(where) == 0:
            return self.lm.model.embed_tokens(ids)
        at = int(where[0])
        return torch.cat([self.lm.model.embed_tokens(ids[:at]), video, self.lm.model.embed_tokens(ids[at + 1:])], 0)


def make_adamw(params):
    return torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)


def tpo_loss(pc, pr, rc, rr, chosen_tokens: int, beta: float, sft_weight: float):
    """TPO's loss: sigmoid DPO (TRL's dpo_loss) + alpha x NLL of the chosen answers (token mean)."""
    logits = (pc - pr) - (rc - rr)
    losses = -F.logsigmoid(beta * logits)
    nll = -pc.sum() / chosen_tokens
    return losses.mean() + sft_weight * nll


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def timed_steps(step, steps: int):
    """Wall and CPU (user + system, every thread) seconds of each call after a warm-up call. CPU time is what to
    compare on a loaded machine with one thread per process: waiting for a core does not count."""
    step()  # warm-up: kernel selection, allocator
    times, cpu = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        out = step()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return times, cpu, out


def matmul_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """float32 matmul rate right after the measurement, as `tpo doctor` measures it: the figure MFU divides by."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    c = torch.empty(size, size)
    torch.mm(a, b, out=c)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b, out=c)
        n += 1
    return 2 * size ** 3 * n / (time.perf_counter() - start) / 1e9
