"""Generate the image-classification data set (hidden from agents).

Run by mlab once per task with the working directory scripts/ of a private
copy of the task folder. Writes the agent's data into ../env/ and the hidden
test labels into ./answers.csv.

Every image is drawn, with numpy alone, from a fixed seed: one of ten shapes
at a random position, size, rotation (and mirror image), with random
foreground and background colours, a smooth or striped background, a random
occluding patch, stray lines and pixel noise. Nothing of it ships with the
system, so the hidden labels cannot be looked up; without this generator and
its seed they cannot be recomputed either.
"""
import csv
import os

import numpy as np

SEED = 0x5EED_1A6E  # the secret that, with this file, makes the data
SIZE = 16
N_TRAIN = 6000
N_TEST = 2000
CLASSES = ["disc", "ring", "square", "triangle", "plus", "star", "frame", "crescent", "arrow", "pair"]

# Pixel centres in [-1, 1].
_AXIS = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
GY, GX = np.meshgrid(_AXIS, _AXIS, indexing="ij")


def _polygon_sdf(u, v, verts):
    """Signed distance to a closed polygon (negative inside), vectorised."""
    d = np.full(u.shape, np.inf)
    sign = np.ones(u.shape)
    n = len(verts)
    for i in range(n):
        ax, ay = verts[i]
        bx, by = verts[(i + 1) % n]
        ex, ey = bx - ax, by - ay
        wx, wy = u - ax, v - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0, 1)
        dx, dy = wx - ex * t, wy - ey * t
        d = np.minimum(d, dx * dx + dy * dy)
        c1 = v >= ay
        c2 = v < by
        c3 = ex * wy > ey * wx
        flip = (c1 & c2 & c3) | (~c1 & ~c2 & ~c3)
        sign = np.where(flip, -sign, sign)
    return sign * np.sqrt(d)


def _box(u, v, hx, hy):
    qx, qy = np.abs(u) - hx, np.abs(v) - hy
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _star_verts(points, r_out, r_in):
    a = np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, r_out, r_in)
    return list(zip(r * np.sin(a), -r * np.cos(a)))


def shape_sdf(cls, u, v, rng):
    """Signed distance of class cls in shape coordinates (unit size), with a
    little variation of the shape's own proportions."""
    j = rng.uniform(-1, 1)
    if cls == 0:  # disc
        return np.hypot(u, v) - 0.85
    if cls == 1:  # ring
        w = 0.22 + 0.06 * j
        return np.abs(np.hypot(u, v) - 0.75) - w
    if cls == 2:  # square
        return _box(u, v, 0.72, 0.72)
    if cls == 3:  # triangle
        return _polygon_sdf(u, v, [(0.0, -0.9), (0.85, 0.6), (-0.85, 0.6)])
    if cls == 4:  # plus
        w = 0.26 + 0.05 * j
        return np.minimum(_box(u, v, 0.9, w), _box(u, v, w, 0.9))
    if cls == 5:  # star
        return _polygon_sdf(u, v, _star_verts(5, 0.95, 0.42 + 0.05 * j))
    if cls == 6:  # frame
        w = 0.2 + 0.05 * j
        return np.abs(_box(u, v, 0.7, 0.7)) - w
    if cls == 7:  # crescent
        off = 0.45 + 0.08 * j
        return np.maximum(np.hypot(u, v) - 0.85, -(np.hypot(u - off, v) - 0.7))
    if cls == 8:  # arrow
        shaft = _box(u + 0.25, v, 0.6, 0.17)
        head = _polygon_sdf(u, v, [(0.95, 0.0), (0.15, -0.62), (0.15, 0.62)])
        return np.minimum(shaft, head)
    if cls == 9:  # pair of discs
        gap = 0.5 + 0.08 * j
        return np.minimum(np.hypot(u - gap, v) - 0.38, np.hypot(u + gap, v) - 0.38)
    raise ValueError(cls)


def _colour(rng):
    return rng.uniform(0, 1, 3)


def _contrasting(rng, other):
    for _ in range(100):
        c = _colour(rng)
        if np.abs(c - other).sum() > 0.6:
            return c
    return 1 - other


def render(cls, rng):
    # Background: a gradient between two colours, sometimes striped.
    bg1, bg2 = _colour(rng), _colour(rng)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * GX + np.sin(angle) * GY + 1.5) / 3
    img = bg1 * (1 - t[..., None]) + bg2 * t[..., None]
    if rng.random() < 0.25:
        freq = rng.uniform(2, 6)
        a2 = rng.uniform(0, 2 * np.pi)
        stripes = 0.5 + 0.5 * np.sin(freq * np.pi * (np.cos(a2) * GX + np.sin(a2) * GY))
        img = img * (1 - 0.25 * stripes[..., None]) + 0.25 * stripes[..., None] * _colour(rng)
    # Stray lines behind the shape.
    for _ in range(rng.integers(0, 2)):
        a = rng.uniform(0, np.pi)
        off = rng.uniform(-0.8, 0.8)
        dist = np.abs(np.cos(a) * GX + np.sin(a) * GY - off)
        alpha = np.clip(1.5 - dist * SIZE / 2 / rng.uniform(0.6, 1.2), 0, 1)[..., None]
        img = img * (1 - alpha) + alpha * _colour(rng)

    # The shape: scale, rotation, mirror, position.
    fg = _contrasting(rng, img.mean(axis=(0, 1)))
    scale = rng.uniform(0.45, 0.8)
    theta = rng.uniform(0, 2 * np.pi)
    cx, cy = rng.uniform(-1 + scale * 0.8, 1 - scale * 0.8, 2)
    x, y = (GX - cx) / scale, (GY - cy) / scale
    u = np.cos(theta) * x + np.sin(theta) * y
    v = -np.sin(theta) * x + np.cos(theta) * y
    if rng.random() < 0.5:
        v = -v
    sd = shape_sdf(cls, u, v, rng) * scale * SIZE / 2  # in pixels
    alpha = np.clip(0.5 - sd, 0, 1)[..., None]
    shade = 1 + 0.25 * rng.uniform(-1, 1) * (u / 1.0)[..., None]  # uneven lighting
    img = img * (1 - alpha) + alpha * np.clip(fg * shade, 0, 1)

    # An occluding patch in front, sometimes over the shape.
    if rng.random() < 0.35:
        w, h = rng.uniform(0.1, 0.3, 2)
        ox, oy = rng.uniform(-1, 1, 2)
        box = (np.abs(GX - ox) < w) & (np.abs(GY - oy) < h)
        img = np.where(box[..., None], _colour(rng), img)

    img = img + rng.normal(0, rng.uniform(0.02, 0.08), img.shape)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make(n, rng):
    labels = rng.integers(0, len(CLASSES), n)
    images = np.stack([render(int(c), rng) for c in labels])
    return images, labels


def main():
    rng = np.random.default_rng(SEED)
    train_x, train_y = make(N_TRAIN, rng)
    test_x, test_y = make(N_TEST, rng)
    env = os.path.join("..", "env")
    os.makedirs(env, exist_ok=True)
    np.save(os.path.join(env, "train_images.npy"), train_x, allow_pickle=False)
    np.save(os.path.join(env, "train_labels.npy"), train_y.astype(np.int64), allow_pickle=False)
    np.save(os.path.join(env, "test_images.npy"), test_x, allow_pickle=False)
    with open("answers.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        for i, label in enumerate(test_y):
            w.writerow([i, int(label)])
    print(f"wrote {N_TRAIN} training and {N_TEST} test images of {SIZE}x{SIZE} pixels, {len(CLASSES)} classes")


if __name__ == "__main__":
    main()
