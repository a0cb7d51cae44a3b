# Issue 16 diagnostic: a Python port of native/synthetic/render.cc and lib/synthetic/world.ts's placement for one
# event on one frame (no video encoding), for learn.py.
import numpy as np, math
COLORS = [[220,50,50],[50,190,70],[60,100,235],[235,215,50],[165,70,210],[245,140,35],[235,235,235],[50,210,220]]
BGS = [[24,24,32],[34,30,26],[22,34,30],[38,38,38],[30,24,36]]
SHAPES = ['circle','square','triangle','diamond','cross','ring']
MOTIONS = ['still','left','right','up','down','grow','shrink','blink']

def inside(shape, dx, dy, r):
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == 0: return dx*dx+dy*dy <= r*r
    if shape == 1: return (ax <= 0.85*r) & (ay <= 0.85*r)
    if shape == 2: return (dy >= -r) & (dy <= r) & (ax <= 0.5*(dy+r))
    if shape == 3: return ax+ay <= r
    if shape == 4:
        arm = 0.34*r
        return ((ax <= arm) & (ay <= r)) | ((ay <= arm) & (ax <= r))
    d2 = dx*dx+dy*dy
    return (d2 <= r*r) & (d2 >= 0.3025*r*r)

def frame(rng, W=64, size_scale=1.0, shape=None, noise=3):
    """One frame of a one-event video at a random point of its motion: (uint8 [H,W,3], shape, color)."""
    s = rng.integers(6) if shape is None else shape
    c = rng.integers(8); bg = BGS[rng.integers(5)]; m = rng.integers(8)
    px = lambda n: max(2, round(n*W/64*size_scale))
    small = rng.integers(px(3), px(4)+1)
    size = 2*small if m in (5,6) else rng.integers(px(5), px(8)+1)
    travel = rng.integers(14, 25)
    dx = -travel if m == 1 else travel if m == 2 else 0
    dy = -travel if m == 3 else travel if m == 4 else 0
    span = lambda ext, mv: (size+1+max(0,-mv), ext-size-1-max(0,mv))
    x0,x1 = span(W,dx); y0,y1 = span(W,dy)
    x = rng.integers(x0, x1+1) if x1 >= x0 else W//2; y = rng.integers(y0, y1+1) if y1 >= y0 else W//2
    t = rng.random()
    cx, cy = x+dx*t, y+dy*t
    r0 = small if m == 5 else size; r1 = small if m == 6 else size
    r = r0+(r1-r0)*t
    img = np.empty((W,W,3), np.int32); img[:] = bg
    img += rng.integers(-noise, noise+1, size=(W,W,1))
    yy, xx = np.mgrid[0:W,0:W]
    mask = inside(s, xx+0.5-cx, yy+0.5-cy, r)
    img[mask] = COLORS[c]
    return np.clip(img,0,255).astype(np.uint8), s, c

def batch(rng, n, **kw):
    fs, ss, cs = zip(*[frame(rng, **kw) for _ in range(n)])
    x = np.stack(fs).astype(np.float32)/255.0
    x = (x-0.5)/0.5
    return x.transpose(0,3,1,2), np.array(ss), np.array(cs)
