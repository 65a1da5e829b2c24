"""PyTorch -> kanc and back: a reference GPT's state_dict through kanrun forward.

    python3 tests/torch_forward_roundtrip.py KANRUN SHARED_DIR WORK_DIR

For each layout of the reference (kansformers, hybrid, mlp): builds a tiny
kanref.GPT (seeded), saves its whole state_dict (minGPT's attn.bias masks
included) and a batch (idx, targets with some -1) as safetensors, runs
`kanrun forward MODEL.kdl --init-from STATE --tokens IDS -o OUT` with a batch
smaller than B and T shorter than block_size, and compares OUT's logits and
loss with the reference's forward pass (in float64 on the same float32
weights): max |difference| / max |reference| <= 1e-4. Prints one line per
layout and "ok", or fails.
"""
import os
import subprocess
import sys

import torch

kanrun, shared, work = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(shared, "reference"))
import kanref  # noqa: E402
import safetensors_io  # noqa: E402

MODELS = {"kansformers": "models/kansformers.kdl", "hybrid": "models/hybrid.kdl", "mlp": "models/mingpt.kdl"}
V, BLOCK, L, H, C = 40, 12, 2, 2, 16
B, T = 5, 9  # 3 batches of 2 for kanc (the last one padded), 3 positions of padding

for seed, (layout, kdl) in enumerate(MODELS.items()):
    torch.manual_seed(100 + seed)
    model = kanref.GPT(dict(layout=layout, vocab_size=V, block_size=BLOCK, n_layer=L, n_head=H, n_embd=C, pdrop=0.0))
    state = os.path.join(work, f"{layout}.state.safetensors")
    ids = os.path.join(work, f"{layout}.ids.safetensors")
    out = os.path.join(work, f"{layout}.out.safetensors")
    safetensors_io.save(state, model.state_dict())
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    targets[1, 2] = targets[4, 0] = -1
    safetensors_io.save(ids, dict(idx=idx, targets=targets))
    sets = [f"--set={k}={v}" for k, v in
            dict(vocab_size=V, block_size=BLOCK, n_layer=L, n_head=H, n_embd=C, batch=2).items()]
    run = subprocess.run([kanrun, "forward", kdl, "--init-from", state, "--tokens", ids, "-o", out] + sets,
                         capture_output=True, text=True)
    assert run.returncode == 0, f"{layout}: kanrun forward exited {run.returncode}:\n{run.stdout}{run.stderr}"
    got, _ = safetensors_io.load(out)
    ref = model.double()
    with torch.no_grad():
        logits, loss = ref(idx, targets)
    assert got["logits"].dtype == torch.float32 and tuple(got["logits"].shape) == (B, T, V), got["logits"].shape
    assert got["loss"].dtype == torch.float32 and got["loss"].dim() == 0, got["loss"].shape
    rel = ((got["logits"].double() - logits).abs().max() / logits.abs().max()).item()
    lrel = abs(got["loss"].item() - loss.item()) / abs(loss.item())
    print(f"{layout}: logits max rel err {rel:.2e}, loss {got['loss'].item():.6f} vs {loss.item():.6f}")
    assert rel <= 1e-4 and lrel <= 1e-4, f"{layout}: kanc differs from the reference"
print("ok")
