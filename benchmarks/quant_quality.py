"""How much int4 (the GPU default: round-to-nearest, asymmetric, groups of 128) and bitsandbytes NF4 (the
former default: blocks of 64) change a model with real trained weights, measured on the one real
transformer available offline here: all-MiniLM-L6-v2 (6 layers, 384 wide; its linears have the same kind
of weights as a VLM's, but this is a proxy, not Qwen2.5-VL).

Each variant replaces every linear weight of the encoder by its quantised-then-dequantised version (what
the kernels multiply by) and embeds the same sentences. Reported: the relative error of each linear's
output on the real activations, the cosine between each sentence embedding and the full-precision one,
and how often the nearest other sentence stays the same.

    python benchmarks/quant_quality.py --out benchmarks/results/quant_quality.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SENTENCES = [
    "The patient was discharged after three days with oral antibiotics.",
    "Blood pressure readings above 140/90 should be repeated after five minutes.",
    "The invoice total includes shipping and a 20% value-added tax.",
    "Please return the signed consent form before the procedure.",
    "The MRI showed no sign of a fracture in the left wrist.",
    "Quarterly revenue grew by eight percent compared with last year.",
    "A cat is sleeping on a red sofa next to the window.",
    "Two children are playing football in a park at sunset.",
    "The chart compares rainfall in March across five cities.",
    "Heat the oven to 180 degrees before adding the bread.",
    "The contract may be terminated with thirty days of written notice.",
    "Insulin doses are adjusted according to the glucose measurements.",
    "The train to the airport leaves every fifteen minutes.",
    "The figure shows the network architecture with three encoder layers.",
    "Allergic reactions to penicillin must be recorded in the chart.",
    "The warehouse received two hundred boxes on Monday morning.",
    "A dog runs along the beach carrying a stick.",
    "The report recommends replacing the old server by the end of the year.",
    "Vaccination records are kept for at least ten years.",
    "The table lists the side effects observed in the trial.",
    "Sunlight reflects off the glass towers of the city centre.",
    "Employees must complete the safety training every year.",
    "The scan of page four is blurry and hard to read.",
    "A receipt from the pharmacy shows three prescriptions.",
    "患者术后第三天出院，并口服抗生素。",
    "发票金额包括运费和增值税。",
    "图表比较了五个城市三月份的降雨量。",
    "一只猫睡在窗边的红色沙发上。",
    "合同可以提前三十天书面通知终止。",
    "报告建议在年底前更换旧服务器。",
    "The meeting notes mention a budget increase for the radiology department.",
    "Handwritten notes in the margin refer to the second dosage table.",
]


def int4_weights(weight, group: int = 128):
    from assistant.models import int4

    codes, scales_and_zeros = int4.quantize(weight, group)
    return int4.dequantize(codes, scales_and_zeros, group)


def nf4_weights(weight, blocksize: int = 64):
    import bitsandbytes.functional as bnbf
    import torch

    quantised, state = bnbf.quantize_4bit(weight.to(torch.bfloat16), blocksize=blocksize, quant_type="nf4")
    return bnbf.dequantize_4bit(quantised, state, quant_type="nf4").float()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quant_quality.json"))
    args = parser.parse_args()
    import torch
    from transformers import AutoModel, AutoTokenizer

    from retrieval.embedders import minilm_folder

    folder = minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")

    def embed(model):
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1)

    reference = AutoModel.from_pretrained(folder).eval()
    linears = {name: m for name, m in reference.named_modules() if isinstance(m, torch.nn.Linear)}
    inputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda m, a, out, name=name: inputs.__setitem__(name, a[0].detach()))
             for name, m in linears.items()]
    base = embed(reference)
    for hook in hooks:
        hook.remove()

    def nearest(vectors):
        similarity = vectors @ vectors.T
        similarity.fill_diagonal_(-2)
        return similarity.argmax(1)

    rows = []
    for label, quantise in [("int4 RTN, groups of 128 (GPU default)", int4_weights),
                            ("int4 RTN, groups of 64", lambda w: int4_weights(w, 64)),
                            ("NF4, blocks of 64 (bitsandbytes)", nf4_weights)]:
        model = AutoModel.from_pretrained(folder).eval()
        errors = []
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                original = module.weight.detach().clone()
                approx = quantise(original)
                x = inputs[name]
                want, got = x @ original.T, x @ approx.T
                errors.append(float((got - want).norm() / want.norm()))
                module.weight.data.copy_(approx)
        vectors = embed(model)
        cosines = (vectors * base).sum(-1)
        rows.append({"variant": label, "linears": len(errors),
                     "linear_output_rel_error_mean": sum(errors) / len(errors),
                     "linear_output_rel_error_max": max(errors),
                     "embedding_cosine_mean": float(cosines.mean()), "embedding_cosine_min": float(cosines.min()),
                     "nearest_sentence_unchanged": float((nearest(vectors) == nearest(base)).float().mean())})
    lines = [f"all-MiniLM-L6-v2 (real weights), {len(SENTENCES)} sentences (EN, ZH)", "",
             "| variant | linear output error, mean / max | embedding cosine to fp32, mean / min | "
             "nearest sentence unchanged |", "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['linear_output_rel_error_mean']:.2%} / {r['linear_output_rel_error_max']:.2%} | "
              f"{r['embedding_cosine_mean']:.4f} / {r['embedding_cosine_min']:.4f} | "
              f"{r['nearest_sentence_unchanged']:.0%} |" for r in rows]
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": "all-MiniLM-L6-v2", "sentences": len(SENTENCES), "rows": rows}, indent=2))
    args.out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
