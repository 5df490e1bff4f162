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


def build_qwen3_vl(out: Path, *, hidden: int = 64) -> Path:
    """Qwen3-VL: q/k norms, interleaved M-RoPE, DeepStack visual features added to the first text layers.
    Patches of 16 pixels, merged 2x2: one visual token per 32x32 pixels."""
    if hidden % QUANT_BLOCK:
        raise ValueError(f"hidden must be a multiple of {QUANT_BLOCK} (bitsandbytes' CPU packing)")
    from transformers import Qwen2VLImageProcessor, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    tokenizer = _byte_level_tokenizer(
        specials, eos_token="<|im_end|>", pad_token="<|endoftext|>", extra_special_tokens={}
    )
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 5_000_000.0,
                             "mrope_section": [2, 3, 3], "mrope_interleaved": True},  # sums to head_dim / 2
            eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
            bos_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=3, hidden_size=QUANT_BLOCK, intermediate_size=2 * QUANT_BLOCK, num_heads=2,
            out_hidden_size=hidden, patch_size=16, spatial_merge_size=2, temporal_patch_size=2,
            num_position_embeddings=64, deepstack_visual_indexes=[0, 1],
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    model = Qwen3VLForConditionalGeneration(config).eval()
    image_processor = Qwen2VLImageProcessor(patch_size=16, merge_size=2, temporal_patch_size=2,
                                            min_pixels=64 * 64, max_pixels=256 * 256,
                                            image_mean=[0.5] * 3, image_std=[0.5] * 3)
    video_processor = Qwen3VLVideoProcessor()
    processor = Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=video_processor, chat_template=QWEN_TEMPLATE)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
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


def build_smolvlm(out: Path, *, hidden: int = 64) -> Path:
    """SmolVLM2 (model_type ``smolvlm``): Idefics3's design with its own processor and a video processor."""
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
                "<image>", "<global-img>", "<video>"]
    specials += [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    tokenizer = _byte_level_tokenizer(
        specials, eos_token="<end_of_utterance>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    image_size, patch, scale = 64, 16, 2
    config = SmolVLMConfig(
        text_config=dict(
            model_type="llama", vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=patch),
        scale_factor=scale, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = SmolVLMForConditionalGeneration(config).eval()
    image_processor = SmolVLMImageProcessor(do_image_splitting=False, size={"longest_edge": image_size},
                                            max_image_size={"longest_edge": image_size})
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                 video_processor=SmolVLMVideoProcessor(),
                                 image_seq_len=(image_size // patch) ** 2 // scale**2,
                                 chat_template=IDEFICS3_TEMPLATE)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return _save(out, model, processor)


GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ IMAGE }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def build_gemma3(out: Path, *, hidden: int = 64) -> Path:
    """Gemma 3 (MedGemma 4B's architecture): a SigLIP tower, image tokens pooled to a fixed count."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessor, Gemma3Processor

    marks = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", *marks.values()]
    tokenizer = _byte_level_tokenizer(specials, eos_token="<end_of_turn>", pad_token="<pad>", bos_token="<bos>",
                                      extra_special_tokens=marks)
    image_size, patch, tokens = 32, 8, 4
    config = Gemma3Config(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=4096,
            sliding_window=64, layer_types=["sliding_attention", "full_attention"],
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=image_size, patch_size=patch),
        mm_tokens_per_image=tokens, boi_token_index=tokenizer.convert_tokens_to_ids(marks["boi_token"]),
        eoi_token_index=tokenizer.convert_tokens_to_ids(marks["eoi_token"]),
        image_token_index=tokenizer.convert_tokens_to_ids(marks["image_token"]),
    )
    model = Gemma3ForConditionalGeneration(config).eval()
    processor = Gemma3Processor(image_processor=Gemma3ImageProcessor(size={"height": image_size, "width": image_size}),
                                tokenizer=tokenizer, image_seq_length=tokens,
                                chat_template=GEMMA_TEMPLATE.replace("{{ IMAGE }}", marks["boi_token"]))
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return _save(out, model, processor)


def build_gemma4(out: Path, *, hidden: int = 64) -> Path:
    """Gemma 4 (E2B/E4B): per-layer inputs, sliding and full attention layers, a vision tower with 2-D
    positions pooled to soft tokens; no audio tower here."""
    from transformers import (
        Gemma4Config,
        Gemma4ForConditionalGeneration,
        Gemma4ImageProcessor,
        Gemma4Processor,
    )
    from transformers.models.gemma4.feature_extraction_gemma4 import Gemma4AudioFeatureExtractor
    from transformers.models.gemma4.video_processing_gemma4 import Gemma4VideoProcessor

    marks = {"image_token": "<|image|>", "video_token": "<|video|>", "boi_token": "<start_of_image>",
             "eoi_token": "<end_of_image>", "audio_token": "<audio_soft_token>", "boa_token": "<start_of_audio>",
             "eoa_token": "<end_of_audio>"}
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", *marks.values()]
    tokenizer = _byte_level_tokenizer(specials, eos_token="<end_of_turn>", pad_token="<pad>", bos_token="<bos>",
                                      extra_special_tokens=marks)
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in marks.items()}
    config = Gemma4Config(
        text_config=dict(
            vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, global_head_dim=16,
            max_position_embeddings=4096, sliding_window=64, layer_types=["sliding_attention", "full_attention"],
            vocab_size_per_layer_input=len(tokenizer), hidden_size_per_layer_input=16,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           num_key_value_heads=2, head_dim=16, patch_size=8, pooling_kernel_size=2,
                           position_embedding_size=64),
        audio_config=None,
        image_token_id=ids["image_token"], video_token_id=ids["video_token"], audio_token_id=ids["audio_token"],
        boi_token_id=ids["boi_token"], eoi_token_id=ids["eoi_token"], boa_token_id=ids["boa_token"],
        eoa_token_index=ids["eoa_token"],
    )
    model = Gemma4ForConditionalGeneration(config).eval()
    image_processor = Gemma4ImageProcessor(patch_size=8, max_soft_tokens=70, pooling_kernel_size=2)
    video_processor = Gemma4VideoProcessor(patch_size=8, max_soft_tokens=70, pooling_kernel_size=2, num_frames=2)
    processor = Gemma4Processor(feature_extractor=Gemma4AudioFeatureExtractor(), image_processor=image_processor,
                                tokenizer=tokenizer, video_processor=video_processor, image_seq_length=70,
                                chat_template=GEMMA_TEMPLATE.replace("{{ IMAGE }}", marks["image_token"]))
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


def build_siglip2(out: Path) -> Path:
    """SigLIP 2 with variable resolution (NaFlex, model_type ``siglip2``): images as up to N patches with
    their 2-D shape and a patch mask. (The fixed-resolution SigLIP 2 checkpoints are ``siglip`` models.)"""
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model, Siglip2Processor

    tokenizer = _byte_level_tokenizer(
        ["<pad>", "<eos>", "<bos>", "<unk>"], eos_token="<eos>", unk_token="<unk>", pad_token="<pad>",
        bos_token="<bos>", model_max_length=64,
    )
    config = Siglip2Config(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           patch_size=16, num_patches=256),  # the processor's call passes its defaults, 16 and 256
    )
    model = Siglip2Model(config).eval()
    image_processor = Siglip2ImageProcessor(patch_size=16, max_num_patches=256)
    return _save(out, model, Siglip2Processor(image_processor=image_processor, tokenizer=tokenizer))


def _save(out: Path, model, processor) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


BUILDERS = {"qwen2_5_vl": build_qwen2_5_vl, "qwen3_vl": build_qwen3_vl, "idefics3": build_idefics3,
            "clip": build_clip, "siglip": build_siglip, "siglip2": build_siglip2}
# Each preset's architecture, built on demand (tests/contract/test_presets.py): more than the suite's fixture
PRESET_BUILDERS = {"qwen2_5_vl": build_qwen2_5_vl, "qwen3_vl": build_qwen3_vl, "idefics3": build_idefics3,
                   "smolvlm": build_smolvlm, "gemma3": build_gemma3, "gemma4": build_gemma4}


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
