#!/usr/bin/env python
"""Download the models in models/manifest.yaml, or build their tiny stand-ins.

    python scripts/download_models.py flux-schnell sdxl     # real weights, by model id
    python scripts/download_models.py --modality image      # every image model
    python scripts/download_models.py --tiny                # tiny random-weight set (tests, CI)
    python scripts/download_models.py --list                # what is installed

Real downloads use huggingface_hub: the manifest's revision is resolved to one commit and every
file comes from that commit (recorded in <model>/SOURCE.json), interrupted downloads resume, and
files listed with a sha256 in the manifest are checked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.config import REPO_ROOT, Settings  # noqa: E402
from server.pipelines.manager import PROVIDERS  # noqa: E402
from server.pipelines.manifest import Manifest, ModelSpec  # noqa: E402

# The CLIP tokenizer files a single-file SD 1.5 checkpoint needs beside its shipped config folder.
SD15_TOKENIZER = ("stable-diffusion-v1-5/stable-diffusion-v1-5", ("tokenizer/vocab.json", "tokenizer/merges.txt"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model ids or aliases (default: all, or those of --modality)")
    parser.add_argument("--modality", help="every model of this modality: image, audio, music, upscale")
    parser.add_argument("--tiny", action="store_true", help="build tiny random-weight models instead of downloading")
    parser.add_argument("--force", action="store_true", help="rebuild or re-download what is already there")
    parser.add_argument("--list", action="store_true", help="show each model and whether it is installed")
    parser.add_argument("--models-dir", type=Path, help="default: $STUDIO_MODELS_DIR or ./models")
    args = parser.parse_args(argv)

    settings = Settings(**({"models_dir": args.models_dir} if args.models_dir else {}))
    manifest = Manifest.load(settings.manifest)
    specs = [manifest.resolve(name) for name in args.models] or [
        spec for spec in manifest if not args.modality or spec.modality == args.modality
    ]
    if args.list:
        return list_models(manifest, settings)
    for spec in specs:
        if PROVIDERS[spec.provider].hosted:
            print(f"{spec.id}: hosted, nothing to download")
        elif args.tiny:
            build_tiny(spec, settings.models_dir, args.force)
        else:
            download(spec, settings.models_dir, args.force)
    return 0


def list_models(manifest: Manifest, settings: Settings) -> int:
    from server.pipelines.manager import ModelManager

    for row in ModelManager(manifest, settings).status():
        state = ("tiny" if row["tiny"] else "installed") if row["installed"] else "-"
        print(f"{row['id']:<16} {row['modality']:<8} {state:<10} {row['replicate_name']}")
    return 0


def build_tiny(spec: ModelSpec, models_dir: Path, force: bool) -> None:
    from server.pipelines.tiny_images import TINY_IMAGE_MODELS, build_tiny_image_model

    target = models_dir / "tiny" / spec.id
    if not spec.tiny or spec.id not in TINY_IMAGE_MODELS:
        print(f"{spec.id}: no tiny stand-in")
        return
    if (target / "TINY").exists() and not force:
        print(f"{spec.id}: tiny model already built")
        return
    if target.exists():
        shutil.rmtree(target)
    build_tiny_image_model(spec.id, target)
    print(f"{spec.id}: built tiny model in {target}")


def download(spec: ModelSpec, models_dir: Path, force: bool) -> None:
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    source = spec.source
    target = models_dir / spec.id
    if (target / "SOURCE.json").exists() and not force:
        print(f"{spec.id}: already downloaded ({target})")
        return
    commit = HfApi().model_info(source.repo, revision=source.revision).sha
    print(f"{spec.id}: {source.repo} at {commit} -> {target}")
    if source.single_file:
        hf_hub_download(source.repo, source.single_file, revision=commit, local_dir=target)
        shutil.copytree(REPO_ROOT / "models" / source.config, target / "config", dirs_exist_ok=True)
        tokenizer_repo, tokenizer_files = SD15_TOKENIZER
        for name in tokenizer_files:
            hf_hub_download(tokenizer_repo, name, local_dir=target / "config")
    else:
        snapshot_download(source.repo, revision=commit, allow_patterns=source.allow_patterns or None, local_dir=target)
    checked = verify(target, source.files)
    record = {"repo": source.repo, "revision": source.revision, "commit": commit, "sha256": checked}
    (target / "SOURCE.json").write_text(json.dumps(record, indent=2))


def verify(target: Path, expected: dict[str, str]) -> dict[str, str]:
    checked = {}
    for name, digest in expected.items():
        actual = sha256_of(target / name)
        if actual != digest.lower():
            raise SystemExit(f"{target / name}: sha256 {actual} does not match the manifest's {digest}")
        checked[name] = actual
    return checked


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


if __name__ == "__main__":
    sys.exit(main())
