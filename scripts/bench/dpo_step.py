"""One configuration of the preference-step benchmark in stock PyTorch + transformers (see stock.py).

  --way trl    TRL's DPOTrainer way (trl/trainer/dpo_trainer.py concatenated_forward): chosen and rejected as
               two rows of one batch, each row with its own copy of the prompt and the video (the tower runs for
               every row, for the policy and for the reference model), the reference model online, logits over
               the full sequence and vocabulary, selective_log_softmax at the answer positions.
  --way best   The best a user gets from stock tools: reference log-probs precomputed once (not timed), the video
               encoded once per pair and shared by both rows, lm_head only at answer positions. The prompt still
               runs twice (once per row): sharing it needs a KV-cache backward transformers does not offer.

Prints one JSON object: pairs/s, step ms (median), peak RSS, the first step's loss (to check that tpo does the
same computation).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from stock import StockVideoLM, matmul_gflops, make_adamw, median, peak_rss_mib, set_threads, timed_steps, tpo_loss


def selective_log_softmax(logits, index):
    """trl/trainer/utils.py selective_log_softmax (float32 branch): logsumexp row by row to bound memory."""
    selected = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
    lse = torch.stack([torch.logsumexp(lg, dim=-1) for lg in logits])
    return selected - lse


def rows_for(model, pair, tokens_of):
    """The two rows (prompt + chosen, prompt + rejected) of a pair as embeddings, and the answer positions."""
    rows, answers = [], []
    for answer_key in ("chosen", "rejected"):
        video = tokens_of(pair)
        prompt = model.embed(pair["prompt"], video)
        rows.append(torch.cat([prompt, model.lm.model.embed_tokens(pair[answer_key])], 0))
        answers.append((prompt.shape[0], pair[answer_key]))
    return rows, answers


def concatenated_logps(model, pairs, tokens_of, full_logits: bool):
    """Summed answer log-probs [2B] (chosen, rejected per pair) from one forward over the concatenated batch."""
    rows, answers = [], []
    for pair in pairs:
        r, a = rows_for(model, pair, tokens_of)
        rows += r
        answers += a
    longest = max(r.shape[0] for r in rows)
    embeds = torch.stack([F.pad(r, (0, 0, 0, longest - r.shape[0])) for r in rows])
    mask = torch.stack([torch.arange(longest) < r.shape[0] for r in rows]).long()
    if full_logits:
        logits = model.lm(inputs_embeds=embeds, attention_mask=mask).logits  # [2B, L, V]
        out = []
        for i, (p, ids) in enumerate(answers):
            out.append(selective_log_softmax(logits[i : i + 1, p - 1 : p - 1 + len(ids)], ids.unsqueeze(0)).sum())
        return torch.stack(out)
    hidden = model.lm.model(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    out = []
    for i, (p, ids) in enumerate(answers):
        logits = model.lm.lm_head(hidden[i, p - 1 : p - 1 + len(ids)])
        out.append(logits.log_softmax(-1).gather(-1, ids.unsqueeze(-1)).sum())
    return torch.stack(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True, help="folder with model/ and inputs.safetensors (tpo bench pytorch writes it)")
    ap.add_argument("--way", choices=["trl", "best"], required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--sft-weight", type=float, default=1.0)
    ap.add_argument("--profile", help="write a Chrome trace of one step here (torch.profiler)")
    a = ap.parse_args()
    set_threads(a.threads)
    torch.manual_seed(0)
    policy = StockVideoLM.load(f"{a.work}/model")
    policy.train()
    for p in policy.vision.parameters():
        p.requires_grad_(False)
    inputs = load_file(f"{a.work}/dpo.safetensors")
    n = inputs["chosen"].shape[0]
    pairs = [{"prompt": inputs["prompt"], "chosen": inputs["chosen"][i], "rejected": inputs["rejected"][i],
              "pixels": inputs["pixels"][i]} for i in range(n)]
    chosen_tokens = int(inputs["chosen"].numel())
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = make_adamw(params)

    if a.way == "trl":
        reference = copy.deepcopy(policy).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        encode = lambda m: (lambda pair: m.encode_video(pair["pixels"]))  # every row encodes its own video

        def step():
            optimizer.zero_grad(set_to_none=True)
            logps = concatenated_logps(policy, pairs, encode(policy), full_logits=True).view(-1, 2)
            with torch.no_grad():
                ref = concatenated_logps(reference, pairs, encode(reference), full_logits=True).view(-1, 2)
            loss = tpo_loss(logps[:, 0], logps[:, 1], ref[:, 0], ref[:, 1], chosen_tokens, a.beta, a.sft_weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            return loss.item()
    else:
        with torch.no_grad():
            ref = concatenated_logps(policy, pairs, lambda pair: policy.encode_video(pair["pixels"]), full_logits=False).view(-1, 2)

        def step():
            optimizer.zero_grad(set_to_none=True)
            tokens = {}

            def once(pair):  # the video of a pair encoded once, shared by its two rows
                key = id(pair)
                if key not in tokens:
                    tokens[key] = policy.encode_video(pair["pixels"])
                return tokens[key]

            logps = concatenated_logps(policy, pairs, once, full_logits=False).view(-1, 2)
            loss = tpo_loss(logps[:, 0], logps[:, 1], ref[:, 0], ref[:, 1], chosen_tokens, a.beta, a.sft_weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            return loss.item()

    first_loss = step()  # the first step, from the starting weights: compared with tpo's
    times, cpu, _ = timed_steps(step, a.steps)
    if a.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            step()
        prof.export_chrome_trace(a.profile)
    step_s = median(times)
    json.dump({"impl": "pytorch", "way": a.way, "pairs": n, "stepMs": step_s * 1000, "pairsPerSecond": n / step_s,
               "peakRssMiB": peak_rss_mib(), "firstLoss": first_loss, "stepsMs": [t * 1000 for t in times],
               "cpuMs": median(cpu) * 1000, "matmulGflops": matmul_gflops(),
               "torch": torch.__version__, "threads": torch.get_num_threads()}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
