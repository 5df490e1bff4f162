"""Tiny random models of the real architectures, built offline in-process.

They exercise the product's real loading code (``from_pretrained`` on a folder) without a model hub.
Their answers are random text: they prove the plumbing, not the quality.

    python -m tests.helpers.tiny_models DIR      # writes DIR/qwen2_5_vl, DIR/idefics3, DIR/clip, DIR/siglip
"""

from __future__ import annotations

import sys
from pathlib import Path

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A chest x-ray shows the lungs, the heart and the ribs.",
    "What is in this image? Describe the picture in detail.",
    "The invoice total is 42 euros, due on the first of March.",
    "Cats and dogs are common pets; a red car is parked outside.",
    "Answer the question using the numbered sources and cite them like [1] or [2].",
    "图片里有什么？请描述这张图片。",
    "user assistant system image question answer source document page",
]

QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def _byte_level_tokenizer(special_tokens: list[str], *, vocab_size: int = 400, **kwargs):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


# bitsandbytes quantises every linear of the model, the vision tower's too. On a CPU with AVX512-BF16 it
# repacks NF4 weights for its CPU kernel, which needs each quantised linear's input width to be a multiple
# of its 64-weight block and its output width a multiple of 32; on other CPUs that path is never taken.
# Every width below is a multiple of 64 so that both paths run (tests/contract/test_vision_model_contract.py).
QUANT_BLOCK = 64


def build_qwen2_5_vl(out: Path, *, hidden: int = 64) -> Path:
    """Qwen2.5-VL with a text width of ``hidden`` (a multiple of 64 so the 4-bit path runs on any CPU)."""
    if hidden % QUANT_BLOCK:
        raise ValueError(f"hidden must be a multiple of {QUANT_BLOCK} (bitsandbytes' CPU packing)")
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    tokenizer = _byte_level_tokenizer(
        specials, eos_token="<|im_end|>", pad_token="<|endoftext|>", extra_special_tokens={}
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    heads = 4
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=2,
            max_position_embeddings=4096,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},  # sums to head_dim / 2
            eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
            bos_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2, hidden_size=QUANT_BLOCK, intermediate_size=2 * QUANT_BLOCK, num_heads=2,
            out_hidden_size=hidden,
            patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
            fullatt_block_indexes=[1],
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=224 * 224)
    video_processor = Qwen2VLVideoProcessor()
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=QWEN_TEMPLATE,
    )
    return _save(out, model, processor)


def build_idefics3(out: Path, *, hidden: int = 64) -> Path:
    """Idefics3 (the SmolVLM family: the default on machines without CUDA)."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
                "<image>", "<global-img>"]
    specials += [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tokenizer = _byte_level_tokenizer(
        specials, eos_token="<end_of_utterance>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    image_size, patch, scale = 64, 16, 2
    image_seq_len = (image_size // patch) ** 2 // scale**2
    config = Idefics3Config(
        text_config=dict(
            model_type="llama", vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_size=image_size, patch_size=patch,
        ),
        scale_factor=scale,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Idefics3ForConditionalGeneration(config).eval()
    image_processor = Idefics3ImageProcessor(
        do_image_splitting=False, size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len,
        chat_template=IDEFICS3_TEMPLATE,
    )
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return _save(out, model, processor)


def build_clip(out: Path, *, dim: int = 32) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _byte_level_tokenizer(
        ["<|endoftext|>", "<|startoftext|>"], bos_token="<|startoftext|>", eos_token="<|endoftext|>",
        pad_token="<|endoftext|>", model_max_length=77,
    )
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=dim,
    )
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _save(out, model, CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer))


def build_siglip(out: Path) -> Path:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    tokenizer = _byte_level_tokenizer(
        ["</s>", "<unk>", "<pad>"], eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        model_max_length=64,
    )
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=32, patch_size=8),
    )
    model = SiglipModel(config).eval()
    image_processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    return _save(out, model, SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer))


def _save(out: Path, model, processor) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


BUILDERS = {"qwen2_5_vl": build_qwen2_5_vl, "idefics3": build_idefics3, "clip": build_clip,
            "siglip": build_siglip}


def build_all(root: Path) -> dict[str, Path]:
    import torch

    torch.manual_seed(0)
    return {name: build(root / name) for name, build in BUILDERS.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    for name, path in build_all(Path(argv[0])).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
