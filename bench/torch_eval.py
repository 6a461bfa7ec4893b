"""An evaluator that shares no code with evometa: PyTorch ConvNet-4 + ProtoNet on Omniglot test episodes.

Loads an evometa checkpoint (.safetensors, PyTorch state-dict names) into its own torch model,
reads Lake's zips with PIL (rotation by PIL, ink = 1 - pixel/255, area averaging to the
checkpoint's image size: exact area averaging W @ ink @ W^T by default, or one of PIL's resize
filters with --resize), samples its own episodes from the Vinyals test split
with numpy, and reports 5-way K-shot accuracy in eval mode (BN running statistics), euclidean
prototypes. A cross-check of `evometa eval`, never used by the package.

Usage: python3 bench/torch_eval.py CHECKPOINT.safetensors OMNIGLOT_DIR [--episodes 1000] [--shots 5,1]
       [--way 5] [--query 15] [--seed 0] [--resize area|box|bilinear|bicubic|lanczos]
OMNIGLOT_DIR holds images_background.zip, images_evaluation.zip and splits/vinyals/test.txt.
Prints one JSON line per shot.
"""
import argparse
import io
import json
import struct
import time
import zipfile

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=DTYPES[t["dtype"]]).reshape(t["shape"]).copy())
    return tensors, meta


def convnet4(in_ch, ch, blocks, eps):
    layers = []
    for i in range(blocks):
        layers.append(nn.Sequential(nn.Conv2d(in_ch if i == 0 else ch, ch, 3, padding=1), nn.BatchNorm2d(ch, eps=eps),
                                    nn.ReLU(), nn.MaxPool2d(2)))
    model = nn.Module()
    model.encoder = nn.Sequential(*layers)
    return model


def area_matrix(size, raw=105):
    """W[j, i]: the share of output cell j ([j*raw/size, (j+1)*raw/size)) covered by input pixel i, over the cell's width."""
    w = np.zeros((size, raw))
    for j in range(size):
        lo, hi = j * raw / size, (j + 1) * raw / size
        for i in range(int(np.floor(lo)), min(raw, int(np.ceil(hi)))):
            w[j, i] = max(0.0, min(hi, i + 1) - max(lo, i))
    return w / (raw / size)


FILTERS = {"box": Image.BOX, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}


def load_classes(root, names, size, resize):
    zips = [zipfile.ZipFile(f"{root}/images_{part}.zip") for part in ("background", "evaluation")]
    index = {}
    for z in zips:
        for entry in z.namelist():
            if entry.endswith(".png"):
                parts = entry.split("/")
                index.setdefault("/".join(parts[1:3]), []).append((z, entry))
    w = area_matrix(size)
    out = []
    for name in names:
        alphabet, character, rot = name.split("/")
        files = sorted(index[f"{alphabet}/{character}"], key=lambda e: e[1])
        imgs = []
        for z, entry in files:
            img = Image.open(io.BytesIO(z.read(entry))).convert("L").rotate(int(rot[3:]))
            ink = 1.0 - np.asarray(img, dtype=np.float64) / 255.0
            if resize == "area":
                imgs.append((w @ ink @ w.T).astype(np.float32))
            else:
                small = Image.fromarray(ink.astype(np.float32), mode="F").resize((size, size), FILTERS[resize])
                imgs.append(np.asarray(small, dtype=np.float32))
        out.append(np.stack(imgs))
    return np.stack(out)  # [classes, drawings, size, size]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("omniglot")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--shots", default="5,1")
    p.add_argument("--way", type=int, default=5)
    p.add_argument("--query", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resize", default="area", choices=["area", *FILTERS])
    a = p.parse_args()
    torch.set_num_threads(2)
    tensors, meta = read_safetensors(a.checkpoint)
    cfg = json.loads(meta["model"])
    model = convnet4(cfg["inChannels"], cfg["channels"], cfg["blocks"], cfg["bnEps"])
    model.load_state_dict({k: v for k, v in tensors.items()}, strict=True)
    model.eval()
    names = [l.strip() for l in open(f"{a.omniglot}/splits/vinyals/test.txt") if l.strip()]
    t0 = time.time()
    data = torch.from_numpy(load_classes(a.omniglot, names, cfg["imageSize"], a.resize))
    load_s = time.time() - t0
    with torch.no_grad():
        emb = torch.cat([model.encoder(c.unsqueeze(1)).flatten(1).unsqueeze(0) for c in data])  # [classes, drawings, d]
    for shot in [int(s) for s in a.shots.split(",")]:
        rng = np.random.default_rng(a.seed)
        accs = []
        for _ in range(a.episodes):
            cls = rng.choice(len(names), a.way, replace=False)
            sup, qry = [], []
            for c in cls:
                d = rng.choice(emb.shape[1], shot + a.query, replace=False)
                sup.append(emb[c, d[:shot]])
                qry.append(emb[c, d[shot:]])
            protos = torch.stack([s.mean(0) for s in sup])
            q = torch.cat(qry)
            labels = torch.arange(a.way).repeat_interleave(a.query)
            pred = torch.cdist(q, protos).argmin(1)
            accs.append((pred == labels).float().mean().item())
        accs = np.array(accs)
        print(json.dumps({"checkpoint": a.checkpoint, "way": a.way, "shot": shot, "query": a.query, "episodes": a.episodes,
                          "acc": float(accs.mean()), "ci95": float(1.96 * accs.std(ddof=1) / np.sqrt(len(accs))),
                          "classes": len(names), "resize": a.resize, "load_s": round(load_s, 1), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
