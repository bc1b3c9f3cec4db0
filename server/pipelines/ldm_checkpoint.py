"""Diffusers -> original (LDM / CompVis) key layout for Stable Diffusion 1.x weights.

Why this exists: community SD 1.5 checkpoints such as DreamShaper are single .safetensors files in
the original LDM key layout, loaded with `StableDiffusionPipeline.from_single_file`. To test that
loading path offline we turn a tiny diffusers-format pipeline into a checkpoint with the same
layout. This is the inverse of diffusers' single-file conversion (`convert_ldm_unet_checkpoint`,
`convert_ldm_vae_checkpoint`, `convert_ldm_clip_checkpoint`), after diffusers'
scripts/convert_diffusers_to_original_stable_diffusion.py, but driven by the model configs instead
of hard-coding SD 1.5's 4 blocks x 2 layers, so it also fits the tiny models.
"""

from __future__ import annotations

# ---- UNet: diffusers UNet2DConditionModel -> LDM openaimodel.UNetModel ("model.diffusion_model.")

_UNET_TOP = {
    "time_embedding.linear_1.": "time_embed.0.",
    "time_embedding.linear_2.": "time_embed.2.",
    "conv_in.": "input_blocks.0.0.",
    "conv_norm_out.": "out.0.",
    "conv_out.": "out.2.",
}
_UNET_RESNET = [
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
]


def unet_to_ldm(state_dict: dict, config) -> dict:
    # LDM numbers its blocks flat: per level, `layers_per_block` slots of (resnet, attention) and one
    # for the down/upsampler (up levels have one resnet more, which takes the upsampler's slot).
    per_level = config["layers_per_block"] + 1
    prefixes = dict(_UNET_TOP)
    prefixes.update(
        {
            "mid_block.resnets.0.": "middle_block.0.",
            "mid_block.attentions.0.": "middle_block.1.",
            "mid_block.resnets.1.": "middle_block.2.",
        }
    )
    for level in range(len(config["block_out_channels"])):
        for layer in range(per_level - 1):
            slot = 1 + level * per_level + layer
            prefixes[f"down_blocks.{level}.resnets.{layer}."] = f"input_blocks.{slot}.0."
            prefixes[f"down_blocks.{level}.attentions.{layer}."] = f"input_blocks.{slot}.1."
        prefixes[f"down_blocks.{level}.downsamplers.0.conv."] = f"input_blocks.{(level + 1) * per_level}.0.op."
        for layer in range(per_level):
            slot = level * per_level + layer
            prefixes[f"up_blocks.{level}.resnets.{layer}."] = f"output_blocks.{slot}.0."
            prefixes[f"up_blocks.{level}.attentions.{layer}."] = f"output_blocks.{slot}.1."
        # The upsampler follows the last resnet (and its attention, if the level has one).
        has_attention = any(key.startswith(f"up_blocks.{level}.attentions.") for key in state_dict)
        last = level * per_level + per_level - 1
        prefixes[f"up_blocks.{level}.upsamplers.0."] = f"output_blocks.{last}.{2 if has_attention else 1}."

    out = {}
    for key, tensor in state_dict.items():
        prefix = _longest_prefix(key, prefixes)
        rest = key[len(prefix) :]
        if ".resnets." in prefix:
            rest = _replace_first(rest, _UNET_RESNET)
        out[prefixes[prefix] + rest] = tensor
    return out


# ---- VAE: diffusers AutoencoderKL -> LDM AutoencoderKL ("first_stage_model.")

_VAE_ATTENTION = [
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
]


def vae_to_ldm(state_dict: dict, config) -> dict:
    levels = len(config["block_out_channels"])
    prefixes = {name: name for name in ("quant_conv.", "post_quant_conv.")}
    for part in ("encoder", "decoder"):
        prefixes.update(
            {
                f"{part}.conv_in.": f"{part}.conv_in.",
                f"{part}.conv_out.": f"{part}.conv_out.",
                f"{part}.conv_norm_out.": f"{part}.norm_out.",
                f"{part}.mid_block.resnets.0.": f"{part}.mid.block_1.",
                f"{part}.mid_block.resnets.1.": f"{part}.mid.block_2.",
                f"{part}.mid_block.attentions.0.": f"{part}.mid.attn_1.",
            }
        )
    for level in range(levels):
        prefixes[f"encoder.down_blocks.{level}.resnets."] = f"encoder.down.{level}.block."
        prefixes[f"encoder.down_blocks.{level}.downsamplers.0."] = f"encoder.down.{level}.downsample."
        # LDM numbers decoder levels from the lowest resolution up; diffusers the other way round.
        prefixes[f"decoder.up_blocks.{level}.resnets."] = f"decoder.up.{levels - 1 - level}.block."
        prefixes[f"decoder.up_blocks.{level}.upsamplers.0."] = f"decoder.up.{levels - 1 - level}.upsample."

    out = {}
    for key, tensor in state_dict.items():
        prefix = _longest_prefix(key, prefixes)
        rest = key[len(prefix) :]
        if "attentions" in prefix:
            rest = _replace_first(rest, _VAE_ATTENTION)
            if rest.endswith("weight") and tensor.ndim == 2:
                tensor = tensor[:, :, None, None]  # LDM's attention projections are 1x1 convs
        else:
            rest = rest.replace("conv_shortcut.", "nin_shortcut.")
        out[prefixes[prefix] + rest] = tensor
    return out


# ---- CLIP text encoder: HF CLIPTextModel keys, as SD 1.x checkpoints store them


def clip_to_ldm(state_dict: dict) -> dict:
    # transformers >= 5.6 dropped CLIPTextModel's `text_model.` level; checkpoints still have it.
    return {
        "cond_stage_model.transformer." + (key if key.startswith("text_model.") else "text_model." + key): tensor
        for key, tensor in state_dict.items()
    }


def sd_pipeline_to_ldm(pipe) -> dict:
    """One LDM-layout state dict (UNet, VAE, text encoder) from a StableDiffusionPipeline."""
    checkpoint = {}
    for key, tensor in unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config).items():
        checkpoint["model.diffusion_model." + key] = tensor
    for key, tensor in vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config).items():
        checkpoint["first_stage_model." + key] = tensor
    checkpoint.update(clip_to_ldm(pipe.text_encoder.state_dict()))
    return checkpoint


def _longest_prefix(key: str, prefixes: dict) -> str:
    matches = [prefix for prefix in prefixes if key.startswith(prefix)]
    if not matches:
        raise KeyError(f"no LDM name for diffusers key {key!r}")
    return max(matches, key=len)


def _replace_first(name: str, renames: list[tuple[str, str]]) -> str:
    for old, new in renames:
        if name.startswith(old):
            return new + name[len(old) :]
    return name
