/**
 * PyTorch export: a small Python module with the ConvNet-4 encoder as torch.nn modules whose
 * state_dict names are our checkpoints' (encoder.{i}.0 = Conv2d, encoder.{i}.1 = BatchNorm2d), and
 * `load(path)`, which reads an evometa checkpoint with safetensors.torch.load_file,
 * load_state_dict(strict=True) and returns the model in eval mode. The weights stay in the
 * checkpoint; the module only fixes the architecture (channels, image size, BN eps/momentum).
 */
import { basename } from 'node:path';
import { evometaVersion, resolveSource, type ExportState } from './source.js';

/** A Python literal for a finite number (ints stay ints; floats keep a '.' or an exponent). */
function pyNum(x: number): string {
  if (Number.isInteger(x)) return String(x);
  const s = String(x);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/**
 * Python source defining `ConvNet4` (forward: images [N, cin, S, S] -> embeddings [N, E]) and
 * `load(path, device="cpu")` for the architecture of the given checkpoint path or model state.
 */
export function exportPytorch(src: string | ExportState): string {
  const { state, path } = resolveSource(src);
  const cfg = state.layout.config;
  const source = path ? JSON.stringify(basename(path)) : 'None';
  return `"""ProtoNet ConvNet-4 encoder (Snell et al.) for evometa checkpoints, written by \`evometa export --format pytorch\`.

Usage:
    from this_module import load
    model = load("best.safetensors")               # eval mode: BN uses the running statistics
    embeddings = model(images)                     # images [N, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE] float32 -> [N, EMBEDDING_SIZE]

The state_dict names are the checkpoint's (encoder.{i}.0 = Conv2d, encoder.{i}.1 = BatchNorm2d), so
load_state_dict(strict=True) takes an evometa checkpoint unchanged. Needs torch and safetensors.
"""
import json
import sys

import torch
from torch import nn
from safetensors import safe_open
from safetensors.torch import load_file

EVOMETA_VERSION = ${JSON.stringify(evometaVersion())}
SOURCE_CHECKPOINT = ${source}
CHANNELS = ${cfg.channels}
IN_CHANNELS = ${cfg.inChannels}
IMAGE_SIZE = ${cfg.imageSize}
BLOCKS = ${cfg.blocks}
BN_EPS = ${pyNum(cfg.bnEps)}
BN_MOMENTUM = ${pyNum(cfg.bnMomentum)}
EMBEDDING_SIZE = ${state.layout.embeddingSize}
CONFIG = {"channels": CHANNELS, "inChannels": IN_CHANNELS, "imageSize": IMAGE_SIZE, "blocks": BLOCKS,
          "bnEps": BN_EPS, "bnMomentum": BN_MOMENTUM}


def conv_block(cin, cout):
    """3x3 conv (padding 1), BatchNorm, ReLU, 2x2 max-pool."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class ConvNet4(nn.Module):
    """The encoder: BLOCKS conv blocks, then flatten (NCHW order) to [N, EMBEDDING_SIZE]."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(*[conv_block(IN_CHANNELS if i == 0 else CHANNELS, CHANNELS) for i in range(BLOCKS)])

    def forward(self, images):
        return self.encoder(images).flatten(1)


def load(path, device="cpu"):
    """ConvNet4 with the checkpoint's weights and BN running statistics (strict), in eval mode."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata() or {}
    if "model" in meta:
        model_cfg = json.loads(meta["model"])
        for key, want in CONFIG.items():
            if key in model_cfg and model_cfg[key] != want:
                raise ValueError(f"{path}: model {key} is {model_cfg[key]}, this module was written for {want}")
    model = ConvNet4()
    model.load_state_dict(load_file(path, device=str(device)), strict=True)
    return model.to(device).eval()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python {sys.argv[0]} CHECKPOINT.safetensors")
    m = load(sys.argv[1])
    with torch.no_grad():
        z = m(torch.zeros(2, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE))
    print(f"loaded {sys.argv[1]}: embeddings {tuple(z.shape)}")
`;
}
