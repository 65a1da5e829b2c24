"""Loads a kanc checkpoint into the PyTorch reference with load_state_dict(strict=True).

    python3 tests/torch_load_state.py CHECKPOINT_DIR LAYOUT SHARED_DIR

LAYOUT is kanref's: kansformers, hybrid or mlp. The model's hyperparameters come
from the checkpoint's __metadata__ (kanc_config). Prints "ok" and the loss of a
forward pass on fixed tokens, or fails.
"""
import json
import math
import os
import sys

import torch

ckpt, layout, shared = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(shared, "reference"))
import kanref  # noqa: E402
import safetensors_io  # noqa: E402

tensors, meta = safetensors_io.load(os.path.join(ckpt, "model.safetensors"))
assert meta.get("format") == "pt", meta.get("format")
cfg = json.loads(meta["kanc_config"])
model = kanref.GPT(dict(layout=layout, vocab_size=cfg["vocab_size"], block_size=cfg["block_size"],
                        n_layer=cfg["n_layer"], n_head=cfg["n_head"], n_embd=cfg["n_embd"], pdrop=0.0,
                        grid_size=cfg.get("grid_size", 5), spline_order=cfg.get("spline_order", 3),
                        grid_range=cfg.get("grid_range", [-1, 1]),
                        # the basis and its options (kanref.kan_options reads them by these names)
                        **{k: cfg[k] for k in ("basis", "degree", "grid_min", "grid_max", "num_grids",
                                               "use_base_update", "use_layernorm", "spline_weight_init_scale")
                           if k in cfg}))
model.load_state_dict(tensors, strict=True)
g = torch.Generator().manual_seed(0)
idx = torch.randint(0, cfg["vocab_size"], (2, cfg["block_size"]), generator=g)
with torch.no_grad():
    _, loss = model(idx, idx)
assert math.isfinite(loss.item()), loss
print("ok", round(loss.item(), 4))
