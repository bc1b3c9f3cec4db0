"""Tiny, randomly initialised stand-ins for the image models, built offline from configs.

Each tiny model uses the same pipeline, model, tokenizer and scheduler classes as the real one and
is written in the real on-disk layout, so it loads through exactly the code path real weights
take (`from_pretrained` / `from_single_file` with `local_files_only=True`). Only the sizes shrink:
a folder is 1-3 MB and a 4-step 256x256 image takes ~0.1-0.2 s on a 2-core CPU. The VAEs
keep the real downsampling factor of 8 (4 blocks), so request sizes map to latents as they do for
real models.

torch / transformers / diffusers are imported inside functions: importing this module must stay
cheap because the API server imports it at start-up.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

TINY_IMAGE_MODELS: tuple[str, ...] = ("flux-schnell", "flux-dev", "flux-2-klein", "sdxl", "sd15", "dreamshaper")

# Name of the single-file checkpoint inside a "dreamshaper" folder; its configs go to config/.
DREAMSHAPER_FILE = "dreamshaper.safetensors"

# The real text encoders' context lengths (CLIP 77 tokens); the pipelines rely on them.
CLIP_MAX_LENGTH = 77


def build_tiny_image_model(model_id: str, target: Path, seed: int = 0) -> None:
    """Build the tiny stand-in for `model_id` into `target` (replaced if it exists).

    The folder is written next to `target` under a temporary name and renamed into place at the
    end, so a crash never leaves a half-built model behind. Same seed, same weights.
    """
    if model_id not in _BUILDERS:
        raise ValueError(f"no tiny build for {model_id!r}; known: {', '.join(TINY_IMAGE_MODELS)}")
    import torch

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        # fork_rng: seed the weights without disturbing the caller's global RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _BUILDERS[model_id](tmp)
        (tmp / "TINY").write_text(json.dumps({"tiny": True, "model": model_id, "seed": seed}) + "\n")
        # mkdtemp makes the folder 0700 and safetensors writes 0600 files: open them up like
        # downloaded weights, so a server running as another user can read them.
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        _move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, target: Path) -> None:
    old = None
    if target.exists():
        # A directory cannot be renamed over a non-empty one: move the old one aside first.
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "model")
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- tokenizers
# transformers ships no vocab files, so we make them: every byte-level character (the full 256 byte
# alphabet) is a token, so any prompt -- punctuation, accents, CJK, emoji -- tokenizes without
# unknown tokens or errors. No merges: each character is one token, which is fine for a stand-in.


def _byte_alphabet() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return list(bytes_to_unicode().values())


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    # CLIP's BPE marks a word's last symbol with "</w>", so each character needs both forms.
    for suffix in ("", "</w>"):
        for char in _byte_alphabet():
            vocab[char + suffix] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=CLIP_MAX_LENGTH)


def _t5_tokenizer():
    import string

    from transformers import T5TokenizerFast

    # T5 is a Unigram model over "▁"-prefixed pieces; characters outside the vocab map to <unk>
    # exactly as with the real T5 tokenizer (no error). Printable ASCII covers ordinary prompts.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(char, -5.0) for char in string.printable.strip()]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=512)


# Qwen3's chat template, reduced to what Flux2KleinPipeline uses: user turns plus the empty
# <think></think> block that `enable_thinking=False` adds after the generation prompt.
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)


def _qwen_tokenizer():
    from transformers import Qwen2TokenizerFast

    vocab = {char: i for i, char in enumerate(_byte_alphabet())}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tokenizer = Qwen2TokenizerFast(
        vocab=vocab,
        merges=[],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>"],
        model_max_length=32768,
    )
    tokenizer.chat_template = QWEN_CHAT_TEMPLATE
    return tokenizer


# --------------------------------------------------------------------------- text encoders


def _clip_text_encoder(tokenizer, hidden: int = 32, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=CLIP_MAX_LENGTH,
        projection_dim=hidden,
        hidden_act="quick_gelu",
        # The pooled output is read at the first eos token, so these must match the tokenizer.
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _t5_text_encoder(tokenizer, d_model: int = 32):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=2 * d_model,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",  # as T5 v1.1 / the Flux T5-XXL encoder
        relative_attention_num_buckets=8,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return T5EncoderModel(config)


def _qwen3_text_encoder(tokenizer, hidden: int = 16):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        # Flux2KleinPipeline stacks hidden states 9, 18 and 27 by default: 27 layers are needed.
        num_hidden_layers=27,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return Qwen3ForCausalLM(config)


# --------------------------------------------------------------------------- VAEs
# 4 blocks = 3 downsamplings = factor 8, like the real VAEs. Channels stay small at full resolution
# (the decoder's last block runs at image size) and the only attention is the mid block's, at
# latent resolution (1/8 of the image side).
VAE_SHAPE = dict(
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 16, 16, 16),
    layers_per_block=1,
    norm_num_groups=8,
    mid_block_add_attention=True,
)


def _sd_vae(scaling_factor: float, sample_size: int):
    from diffusers import AutoencoderKL

    return AutoencoderKL(latent_channels=4, sample_size=sample_size, scaling_factor=scaling_factor, **VAE_SHAPE)


def _flux_vae():
    from diffusers import AutoencoderKL

    # Flux.1's VAE: 16 latent channels, shift + scale, and no quant convs.
    return AutoencoderKL(
        latent_channels=16,
        sample_size=1024,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
        **VAE_SHAPE,
    )


def _flux2_vae():
    from diffusers import AutoencoderKLFlux2

    # Flux.2's VAE: 32 latent channels, patchified 2x2 and normalised by a BatchNorm's running stats.
    return AutoencoderKLFlux2(latent_channels=32, sample_size=1024, **VAE_SHAPE)


# --------------------------------------------------------------------------- pipelines


def _sd_scheduler_config() -> dict:
    # Stable Diffusion 1.x / XL noise schedule.
    return dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
    )


# UNets: attention only in the lowest-resolution level and the mid block (1/4 of the latent side),
# where it is cheap. With attention at 1/2 of the latent side a 4-step 1024x1024 SDXL image took
# 7 s of denoising instead of 1 s.
UNET_SHAPE = dict(
    down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    block_out_channels=(16, 16, 32),
    layers_per_block=2,
    norm_num_groups=8,
)


def _sd15_pipeline():
    """The SD 1.5 stand-in (also the source of the "dreamshaper" single-file checkpoint)."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    tokenizer = _clip_tokenizer()
    text_encoder = _clip_text_encoder(tokenizer)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        **UNET_SHAPE,
        attention_head_dim=4,  # diffusers' name for the number of heads
        cross_attention_dim=text_encoder.config.hidden_size,
    )
    return StableDiffusionPipeline(
        vae=_sd_vae(scaling_factor=0.18215, sample_size=512),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=PNDMScheduler(skip_prk_steps=True, set_alpha_to_one=False, **_sd_scheduler_config()),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _build_sd15(folder: Path) -> None:
    _sd15_pipeline().save_pretrained(folder)


def _build_dreamshaper(folder: Path) -> None:
    """SD 1.5 weights as one LDM-layout .safetensors plus a weight-free diffusers config folder.

    For a given seed the weights are the "sd15" stand-in's, so the two must give the same image.
    """
    from safetensors.torch import save_file

    from server.pipelines.ldm_checkpoint import sd_pipeline_to_ldm

    pipe = _sd15_pipeline()
    config = folder / "config"
    pipe.save_pretrained(config)
    for weights in [*config.rglob("*.safetensors"), *config.rglob("*.bin")]:
        weights.unlink()
    state_dict = {key: tensor.contiguous() for key, tensor in sd_pipeline_to_ldm(pipe).items()}
    save_file(state_dict, str(folder / DREAMSHAPER_FILE), metadata={"format": "pt"})


def _build_sdxl(folder: Path) -> None:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tokenizer, tokenizer_2 = _clip_tokenizer(), _clip_tokenizer()
    text_encoder = _clip_text_encoder(tokenizer, hidden=32)
    text_encoder_2 = _clip_text_encoder(tokenizer_2, hidden=32, projection=True)
    time_embed_dim = 8
    unet = UNet2DConditionModel(
        sample_size=128,
        in_channels=4,
        out_channels=4,
        **UNET_SHAPE,
        attention_head_dim=(1, 2, 4),  # diffusers' name for the number of heads
        use_linear_projection=True,
        # SDXL conditions on both encoders' hidden states, concatenated...
        cross_attention_dim=text_encoder.config.hidden_size + text_encoder_2.config.hidden_size,
        # ...and on the pooled embedding plus 6 size/crop numbers, each time-embedded.
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=6 * time_embed_dim + text_encoder_2.config.projection_dim,
    )
    scheduler = EulerDiscreteScheduler(
        interpolation_type="linear",
        prediction_type="epsilon",
        timestep_spacing="leading",
        use_karras_sigmas=False,
        **_sd_scheduler_config(),
    )
    StableDiffusionXLPipeline(
        vae=_sd_vae(scaling_factor=0.13025, sample_size=1024),
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    ).save_pretrained(folder)


def _build_flux(folder: Path, guidance_embeds: bool) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    tokenizer, tokenizer_2 = _clip_tokenizer(), _t5_tokenizer()
    text_encoder = _clip_text_encoder(tokenizer)
    text_encoder_2 = _t5_text_encoder(tokenizer_2)
    vae = _flux_vae()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * vae.config.latent_channels,  # latents are packed in 2x2 patches
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=text_encoder_2.config.d_model,
        pooled_projection_dim=text_encoder.config.hidden_size,
        guidance_embeds=guidance_embeds,
        axes_dims_rope=(4, 6, 6),  # sums to attention_head_dim
    )
    if guidance_embeds:  # FLUX.1-dev: resolution-dependent shift
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True)
    else:  # FLUX.1-schnell: fixed schedule
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    ).save_pretrained(folder)


def _build_flux2_klein(folder: Path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel

    tokenizer = _qwen_tokenizer()
    text_encoder = _qwen3_text_encoder(tokenizer)
    vae = _flux2_vae()
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=4 * vae.config.latent_channels,  # 2x2-patchified latents
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        # The pipeline concatenates 3 of the text encoder's hidden states per token.
        joint_attention_dim=3 * text_encoder.config.hidden_size,
        axes_dims_rope=(4, 4, 4, 4),  # sums to attention_head_dim
        guidance_embeds=False,  # klein is step-distilled, not guidance-distilled
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, time_shift_type="exponential")
    Flux2KleinPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=True,
    ).save_pretrained(folder)


_BUILDERS = {
    "flux-schnell": lambda folder: _build_flux(folder, guidance_embeds=False),
    "flux-dev": lambda folder: _build_flux(folder, guidance_embeds=True),
    "flux-2-klein": _build_flux2_klein,
    "sdxl": _build_sdxl,
    "sd15": _build_sd15,
    "dreamshaper": _build_dreamshaper,
}
assert set(_BUILDERS) == set(TINY_IMAGE_MODELS)
