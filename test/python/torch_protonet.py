"""Load an evometa checkpoint in PyTorch unchanged and print embeddings.

Usage: torch_protonet.py CHECKPOINT IMAGES.f32 N SIZE OUT.f32 MODE
Builds Snell et al.'s encoder as nn.Sequential(4 x nn.Sequential(Conv2d, BatchNorm2d, ReLU, MaxPool2d)),
loads the safetensors file with safetensors.torch.load_file + load_state_dict(strict=True), and writes
the flattened embeddings of the images (float32, little-endian) in eval or train mode.
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))


def main():
    ckpt, images, n, size, out, mode = sys.argv[1:7]
    n, size = int(n), int(size)
    with safe_open(ckpt, framework="pt") as f:
        meta = json.loads(f.metadata()["model"])
    c, cin = meta["channels"], meta["inChannels"]
    encoder = nn.Sequential(block(cin, c), block(c, c), block(c, c), block(c, c))
    model = nn.Module()
    model.encoder = encoder
    model.load_state_dict(load_file(ckpt), strict=True)
    model.train(mode == "train")
    x = torch.from_numpy(np.fromfile(images, dtype="<f4").reshape(n, cin, size, size))
    with torch.no_grad():
        z = model.encoder(x).reshape(n, -1)
    z.numpy().astype("<f4").tofile(out)


if __name__ == "__main__":
    main()
