"""Generation in stock transformers (see stock.py): Qwen2ForCausalLM.generate(inputs_embeds=...), greedy, KV cache,
for prompts that each hold one video's visual tokens (the same video) and their own question tokens.

Prints one JSON object: tokens/s (new tokens of every prompt over the wall time of the generate call, prefill
included), the median over --repeats calls, and peak RSS.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from safetensors.torch import load_file

from stock import StockVideoLM, matmul_gflops, median, peak_rss_mib, set_threads


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    set_threads(a.threads)
    model = StockVideoLM.load(f"{a.work}/model").eval()
    inputs = load_file(f"{a.work}/generate.safetensors")
    prompts = inputs["prompts"]  # [N, P] with the -200 id once per row
    with torch.no_grad():
        video = model.encode_video(inputs["pixels"][0])
        embeds = torch.stack([model.embed(row, video) for row in prompts])
    mask = torch.ones(embeds.shape[:2], dtype=torch.long)

    def call():
        with torch.no_grad():
            return model.lm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=a.new_tokens,
                                     min_new_tokens=a.new_tokens, do_sample=False, pad_token_id=0, eos_token_id=None)

    first = call()  # warm-up, and the tokens to compare with tpo's
    times, cpu = [], []
    for _ in range(a.repeats):
        t, c = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    s = median(times)
    n = prompts.shape[0] * a.new_tokens
    json.dump({"impl": "pytorch", "way": "generate", "tokensPerSecond": n / s, "callMs": s * 1000, "cpuMs": median(cpu) * 1000, "matmulGflops": matmul_gflops(),
               "peakRssMiB": peak_rss_mib(), "tokens": first.tolist(), "torch": torch.__version__}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
