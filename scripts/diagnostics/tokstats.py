# Issue 16 diagnostic: a model's visual tokens (replica.py's encode) on dumped inputs: their norm, the part shared
# by every frame, and the text embeddings' norm.  python scripts/diagnostics/tokstats.py MODEL [INPUTS]
import os, sys, torch
sys.argv = ['replica.py', '--model', sys.argv[1], '--check', '0', '--holdout', '0'] + (['--inputs', sys.argv[2]] if len(sys.argv) > 2 else [])
exec(open(os.path.join(os.path.dirname(__file__), 'replica.py')).read().split('if a.check:')[0])
with torch.no_grad():
    v = encode(d['pixels'][:300])            # [300, 20, 128]
    v = v.view(300, 4, 5, 128)[:, :, :4].reshape(300, 16, 128)
    mean = v.mean(0, keepdim=True)
    dev = v - mean
    # per-position and per-frame: how much of each token is shared by every frame
    print(f'token norm {v.norm(dim=-1).mean():.3f}; shared (mean over frames) norm {mean.norm(dim=-1).mean():.3f}; deviation norm {dev.norm(dim=-1).mean():.3f}')
    # the object's token (largest deviation) vs background tokens
    dn = dev.norm(dim=-1); obj = dn.max(1).values.mean(); bg = dn.median(1).values.mean()
    print(f'deviation: object token (max) {obj:.3f}, median token {bg:.3f}')
    e = lm.model.embed_tokens.weight; print(f'text embedding norm {e.norm(dim=-1).mean():.3f}')
    # after the LM's first RMSNorm (scale-free): share of the token's direction that varies
    x = v / v.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    xd = x - x.mean(0, keepdim=True)
    print(f'after RMSNorm: deviation / total {(xd.norm(dim=-1) / x.norm(dim=-1)).mean():.4f}; object token {(xd.norm(dim=-1) / x.norm(dim=-1)).max(1).values.mean():.4f}')
