"""Import a module written by `evometa export --format pytorch`, load a checkpoint with it, write embeddings.

Usage: load_exported.py MODULE.py CHECKPOINT IMAGES.f32 N OUT.f32
Prints one JSON line: the module's constants, the model's training flag and the embedding shape.
"""
import importlib.util
import json
import sys

import numpy as np
import torch


def main():
    module_path, ckpt, images, n, out = sys.argv[1:6]
    n = int(n)
    spec = importlib.util.spec_from_file_location("evometa_exported", module_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.load(ckpt)
    x = torch.from_numpy(np.fromfile(images, dtype="<f4").reshape(n, mod.IN_CHANNELS, mod.IMAGE_SIZE, mod.IMAGE_SIZE))
    with torch.no_grad():
        z = model(x)
    z.numpy().astype("<f4").tofile(out)
    print(json.dumps({"training": model.training, "shape": list(z.shape), "channels": mod.CHANNELS,
                      "imageSize": mod.IMAGE_SIZE, "embeddingSize": mod.EMBEDDING_SIZE,
                      "keys": sorted(model.state_dict().keys())}))


if __name__ == "__main__":
    main()
