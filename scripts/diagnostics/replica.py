# Issue 16 diagnostic (docs/results.md, "why the base does not see shape"): tpo's tiny LLaVA-Video rebuilt from
# transformers' modules (SiglipVisionModel, the mlp2x_gelu projector, LLaVA's 2x2 average pooling and grid newlines,
# Qwen2ForCausalLM) with a tpo model folder's weights, trained as probe-stage trains (SFT, AdamW, cosine with 3 %
# warm-up, clip 1, batch 64, token-mean cross entropy over the answer tokens) on the inputs tpo's trainer makes
# (dump-inputs.mjs). --check N: the loss and each part's gradient norm on the first N records, to compare with
# probe-grads.js (parity of the training path); then variants (--fresh-tower: SigLIP's own init; --torch-proj; --pool).
# The last --holdout records are never trained on: the answer's shape word is scored on them every 50 steps.
# --tower-init says where the tower's weights come from: the model folder's (checkpoint), a fresh draw by tpo's rule
# (native/model/loader.cc create_model: biases 0, norms 1, every other weight N(0, initializer_range)) or by SigLIP's
# own (transformers' SiglipPreTrainedModel._init_weights, what constructing SiglipVisionModel does); the fresh draws
# follow --seed, as does the batch order. --json PATH writes the held-out accuracies and losses (atomically, after
# every evaluation, so a stopped run keeps what it measured).
#   node scripts/diagnostics/dump-inputs.mjs WORLD MODEL runs/py/inputs.safetensors 1000
#   python scripts/diagnostics/replica.py --model MODEL --inputs runs/py/inputs.safetensors [--check 64 | --steps 300 ...]
# Python is never a runtime dependency of tpo: this is a measurement, run with the bench venv.
import argparse, json, math, time, torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file
from transformers import SiglipVisionConfig, SiglipVisionModel, Qwen2Config, Qwen2ForCausalLM
ap = argparse.ArgumentParser()
ap.add_argument('--model', required=True); ap.add_argument('--inputs', default='runs/py/inputs.safetensors')
ap.add_argument('--steps', type=int, default=300); ap.add_argument('--lr', type=float, default=1e-3)
ap.add_argument('--pool', type=int, default=2); ap.add_argument('--check', type=int, default=0)
ap.add_argument('--freeze-lm', action='store_true'); ap.add_argument('--seed', type=int, default=1)
ap.add_argument('--fresh-tower', action='store_true', help="the tower at SigLIP's own init (transformers), not tpo's: --tower-init siglip")
ap.add_argument('--tower-init', choices=['checkpoint', 'tpo', 'siglip'], default='checkpoint')
ap.add_argument('--json', help='write held-out accuracy and training loss per step here')
ap.add_argument('--torch-proj', action='store_true', help='the projector at torch.nn.Linear default init')
ap.add_argument('--holdout', type=int, default=200)
ap.add_argument('--scale', type=float, default=1.0, help='multiply visual tokens by this')
a = ap.parse_args()
if a.fresh_tower: a.tower_init = 'siglip'
torch.manual_seed(a.seed); torch.set_num_threads(1)
cfg = json.load(open(f'{a.model}/config.json')); vc = cfg['vision_config']
w = load_file(f'{a.model}/model.safetensors')
tower = SiglipVisionModel(SiglipVisionConfig(image_size=64, patch_size=vc['patch_size'], hidden_size=vc['hidden_size'], intermediate_size=vc['intermediate_size'],
    num_hidden_layers=vc['num_hidden_layers_in_checkpoint'], num_attention_heads=vc['num_attention_heads'], layer_norm_eps=vc['layer_norm_eps'], hidden_act=vc['hidden_act'], vision_use_head=False))
p = 'model.vision_tower.vision_tower.vision_model.'
if a.tower_init == 'checkpoint': print(tower.load_state_dict({k[len(p):]: v for k, v in w.items() if k.startswith(p)}, strict=False))
elif a.tower_init == 'tpo':  # create_model's rule, drawn here from --seed (not libtorch's stream: another draw, the same law)
    std = cfg.get('initializer_range') or 0.02
    with torch.no_grad():
        for name, q in tower.named_parameters():
            if name.endswith('.bias'): q.zero_()
            elif 'norm' in name: q.fill_(1.0)
            else: q.normal_(0.0, std)
proj = nn.Sequential(nn.Linear(96, 128), nn.GELU(), nn.Linear(128, 128))
if not a.torch_proj: proj.load_state_dict({k[len('model.mm_projector.'):]: v for k, v in w.items() if k.startswith('model.mm_projector.')})
newline = nn.Parameter(w['model.image_newline'].clone())
qc = Qwen2Config(vocab_size=cfg['vocab_size'], hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, attn_implementation='eager')
lm = Qwen2ForCausalLM(qc)
print(lm.load_state_dict({k: v for k, v in w.items() if not k.startswith('model.vision_tower') and not k.startswith('model.mm_projector') and k != 'model.image_newline'}, strict=False))
d = load_file(a.inputs); N = d['pixels'].shape[0] - a.holdout
def encode(px):
    h = tower(pixel_values=px, output_hidden_states=True).hidden_states[-1]  # 3 layers built: hidden_states[3]
    t = proj(h); g = 64 // vc['patch_size']
    t = t.view(-1, g, g, 128).permute(0, 3, 1, 2)
    if a.pool > 1: t = F.avg_pool2d(t, a.pool)
    t = t.permute(0, 2, 3, 1); s = t.shape[1]
    t = torch.cat([t, newline.view(1, 1, 1, -1).expand(t.shape[0], s, 1, -1)], 2).reshape(t.shape[0], -1, 128)
    return t * a.scale
def loss_of(idx, evaluate=False):
    vis = encode(d['pixels'][idx]); rows, labels = [], []
    for b, i in enumerate(idx.tolist()):
        n = int(d['plen'][i] + d['alen'][i]); ids = d['ids'][i, :n].long(); at = int((ids == -200).nonzero()[0])
        e = lm.model.embed_tokens(ids.clamp(min=0))
        rows.append(torch.cat([e[:at], vis[b], e[at + 1:]])); lab = torch.full((rows[-1].shape[0],), -100); 
        pl = int(d['plen'][i]) - 1 + vis.shape[1]; lab[pl:] = ids[int(d['plen'][i]):]; labels.append(lab)
    L = max(r.shape[0] for r in rows)
    x = torch.stack([F.pad(r, (0, 0, 0, L - r.shape[0])) for r in rows]); m = torch.stack([torch.arange(L) < r.shape[0] for r in rows]).long()
    y = torch.stack([F.pad(l, (0, L - l.shape[0]), value=-100) for l in labels])
    logits = lm(inputs_embeds=x, attention_mask=m).logits[:, :-1]
    if evaluate:  # the answer's first token, among the six shape words' ids
        first = (y[:, 1:] != -100).int().argmax(1); lg = logits[torch.arange(len(idx)), first]; truth = y[:, 1:][torch.arange(len(idx)), first]
        return (lg[:, shape_ids].argmax(1) == (truth.unsqueeze(1) == shape_ids.unsqueeze(0)).int().argmax(1)).float().mean().item()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, 1:].reshape(-1), ignore_index=-100), vis
firsts = [int(d['ids'][i, int(d['plen'][i])]) for i in range(d['ids'].shape[0])]
shape_ids = torch.tensor(sorted(set(firsts))); print('shape word ids', shape_ids.tolist())
if a.check:
    l, vis = loss_of(torch.arange(a.check)); l.backward()
    gn = lambda ps: torch.sqrt(sum((q.grad ** 2).sum() for q in ps if q.grad is not None)).item()
    print(f'loss of the first {a.check} records at these weights: {l.item():.4f}; visual token norm {vis.norm(dim=-1).mean():.3f}; '
          f'grad norm vision {gn(tower.parameters()):.4e} projector {gn(list(proj.parameters()) + [newline]):.4e} language {gn(lm.parameters()):.4e}'); raise SystemExit
params = list(tower.parameters()) + list(proj.parameters()) + [newline] + ([] if a.freeze_lm else list(lm.parameters()))
opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
record = {'args': vars(a), 'heldout': {}, 'loss': {}}
def write_json():
    if not a.json: return
    import os; tmp = a.json + '.tmp'; json.dump(record, open(tmp, 'w'), indent=1); os.replace(tmp, a.json)
warm = math.ceil(0.03 * a.steps); g = torch.Generator().manual_seed(a.seed); order = torch.randperm(N, generator=g); pos = 0; t0 = time.time(); run = 0
for step in range(1, a.steps + 1):
    if pos + 64 > N: order = torch.randperm(N, generator=g); pos = 0
    idx = order[pos:pos + 64]; pos += 64
    lr = a.lr * (step / warm if step <= warm else 0.5 * (1 + math.cos(math.pi * (step - warm) / (a.steps - warm))))
    for gp in opt.param_groups: gp['lr'] = lr
    l, vis = loss_of(idx); opt.zero_grad(); l.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step(); run += l.item()
    if step % 50 == 0 and a.holdout:
        with torch.no_grad(): acc = loss_of(torch.arange(N, N + a.holdout), evaluate=True)
        print(f'step {step} held-out accuracy {acc:.3f}', flush=True); record['heldout'][step] = acc; write_json()
    if step % 10 == 0: print(f'step {step} loss {run / 10:.4f} vis norm {vis.norm(dim=-1).mean():.2f} ({time.time() - t0:.0f} s)', flush=True); record['loss'][step] = run / 10; run = 0
record['seconds'] = time.time() - t0; write_json()
