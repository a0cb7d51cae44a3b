# Issue 16 diagnostic: can the tiny tower (SigLIP 96 wide, 8 x 8 patches on 64 x 64, layer 3 of 4) + mlp2x_gelu +
# 2 x 2 average pooling learn shape at all, read by a one-query attention head (no language model)? Frames from
# world.py (a port of the renderer), fresh each batch or a fixed set (--fixed 1000, probe-stage's world size).
import sys, time, argparse, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from transformers import SiglipVisionConfig, SiglipVisionModel
import world
ap = argparse.ArgumentParser()
ap.add_argument('--patch', type=int, default=8); ap.add_argument('--pool', type=int, default=2)
ap.add_argument('--steps', type=int, default=400); ap.add_argument('--lr', type=float, default=1e-3)
ap.add_argument('--target', default='shape'); ap.add_argument('--size-scale', type=float, default=1.0)
ap.add_argument('--fixed', type=int, default=0, help='a fixed training set of this many frames (0: fresh each batch)')
ap.add_argument('--seed', type=int, default=0)
a = ap.parse_args()
torch.manual_seed(a.seed); torch.set_num_threads(1)
cfg = SiglipVisionConfig(image_size=64, patch_size=a.patch, hidden_size=96, intermediate_size=384, num_hidden_layers=3,
                         num_attention_heads=4, num_channels=3, layer_norm_eps=1e-6, hidden_act='gelu_pytorch_tanh')
class M(nn.Module):
    def __init__(s):
        super().__init__()
        s.tower = SiglipVisionModel(cfg)
        s.proj = nn.Sequential(nn.Linear(96,128), nn.GELU(), nn.Linear(128,128))
        s.q = nn.Parameter(torch.randn(1,1,128)*0.02); s.attn = nn.MultiheadAttention(128, 4, batch_first=True)
        s.head = nn.Linear(128, 8)
    def forward(s, x):
        h = s.tower(pixel_values=x, output_hidden_states=True).hidden_states[3]   # layer -2 of 4
        p = s.proj(h); g = 64//a.patch
        p = p.view(-1,g,g,128).permute(0,3,1,2)
        if a.pool > 1: p = F.avg_pool2d(p, a.pool)
        p = p.flatten(2).transpose(1,2)
        o,_ = s.attn(s.q.expand(p.size(0),-1,-1), p, p)
        return s.head(o[:,0])
m = M(); opt = torch.optim.AdamW(m.parameters(), lr=a.lr)
rng = np.random.default_rng(a.seed); vr = np.random.default_rng(999)
vx, vs, vc = world.batch(vr, 512, size_scale=a.size_scale); vx = torch.tensor(vx)
vy = torch.tensor(vs if a.target=='shape' else vc)
if a.fixed:
    fx, fs, fc = world.batch(rng, a.fixed, size_scale=a.size_scale); fx = torch.tensor(fx); fy = torch.tensor(fs if a.target=='shape' else fc)
t0 = time.time()
for step in range(1, a.steps+1):
    if a.fixed:
        idx = torch.randint(0, a.fixed, (64,)); x, y = fx[idx], fy[idx]
    else:
        x, s, c = world.batch(rng, 64, size_scale=a.size_scale); x = torch.tensor(x); y = torch.tensor(s if a.target=='shape' else c)
    lr = a.lr * 0.5*(1+np.cos(np.pi*step/a.steps)) * min(1, step/10)
    for gp in opt.param_groups: gp['lr'] = lr
    loss = F.cross_entropy(m(x), y); opt.zero_grad(); loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
    if step % 50 == 0 or step == a.steps:
        with torch.no_grad(): acc = (m(vx).argmax(1) == vy).float().mean().item()
        print(f'step {step} loss {loss.item():.3f} val acc {acc:.3f} ({time.time()-t0:.0f} s)', flush=True)
