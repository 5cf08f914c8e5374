"""Fixtures for gmx.similarity: tiny randomised iResNets (affine head included), real faces, galleries."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gmx.config import DEMO_DIR
from gmx.encode import (
    Ensemble,
    GestaltModel,
    LoadedModel,
    default_card,
    iresnet,
    iresnet_architecture,
    load_model,
    save_model,
)
from gmx.gallery import Gallery, GalleryImage, Syndrome, build_gallery

TINY_LAYERS = (1, 1, 1, 1)
TINY_WIDTHS = (8, 16, 16, 32)
DEMO_FACES = DEMO_DIR / "synth_faces.npz"
DEMO_MODEL = DEMO_DIR / "gmx-demo-iresnet.pt"


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BatchNorm statistics (2-D and the head's 1-D), PReLU slopes and fc bias."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                c = m.num_features
                m.running_mean.copy_((torch.rand(c, generator=gen) - 0.5) * 0.4)
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(0.5 + torch.rand(c, generator=gen))
                m.bias.copy_((torch.rand(c, generator=gen) - 0.5) * 0.4)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(0.05 + 0.35 * torch.rand(m.weight.shape, generator=gen))
            elif isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen) - 0.5) * 0.2)
    return model.eval()


def tiny_backbone(seed: int = 0, dim: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    return randomise(iresnet(TINY_LAYERS, TINY_WIDTHS, embedding_dim=dim), seed)


def loaded(backbone: nn.Module, path: Path, name: str = "tiny") -> LoadedModel:
    """Save in the gmx format and load back (a real LoadedModel with a fingerprint)."""
    card = default_card(
        name=name,
        architecture=iresnet_architecture(backbone.layers_spec, backbone.widths),
        embedding_dim=backbone.embedding_dim,
    )
    return load_model(save_model(GestaltModel(backbone), card, path), device="cpu")


def astronaut_face() -> np.ndarray:
    """scikit-image's astronaut (public domain), cropped roughly to the ArcFace template."""
    import cv2
    from skimage import data

    crop = data.astronaut()[34:177, 150:293]
    return cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA)


def demo_faces(n: int) -> np.ndarray:
    """The first ``n`` aligned synthetic demo faces (real-image-like, from models/demo)."""
    with np.load(DEMO_FACES, allow_pickle=False) as z:
        blob, offsets = z["webp"].tobytes(), z["offsets"]
        out = []
        for i in range(n):
            with Image.open(io.BytesIO(blob[offsets[i] : offsets[i + 1]])) as im:
                out.append(np.asarray(im.convert("RGB")))
    return np.stack(out)


def noisy_faces(face: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = [
        np.clip(face.astype(np.int16) + rng.integers(-40, 41, face.shape), 0, 255).astype(np.uint8)
        for _ in range(n)
    ]
    # mirror some, so that flipped variants are not trivially close to plain ones
    out[1::2] = [f[:, ::-1].copy() for f in out[1::2]]
    return np.stack(out)


def make_gallery(
    ensemble: Ensemble,
    photos: np.ndarray,
    *,
    subjects: list[str] | None = None,
    syndromes: list[str] | None = None,
    photos_visible: bool = True,
    keep_photos: bool = True,
) -> Gallery:
    n = len(photos)
    subjects = subjects or [f"s{i}" for i in range(n)]
    syndromes = syndromes or [f"S{i % 2}" for i in range(n)]
    images = [GalleryImage(f"i{i}", subjects[i], syndromes[i]) for i in range(n)]
    syn = [Syndrome(s, f"Syndrome {s}") for s in sorted(set(syndromes))]
    return build_gallery(
        "test gallery",
        "1",
        images,
        syn,
        ensemble.embed,
        photos,
        ensemble.variants,
        ensemble.fingerprint,
        keep_photos=keep_photos,
        photos_visible=photos_visible and keep_photos,
    )


@dataclass(frozen=True)
class Setup:
    ensemble: Ensemble
    gallery: Gallery
    face: np.ndarray


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    return loaded(tiny_backbone(0), tmp_path_factory.mktemp("sim") / "tiny.pt")


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return astronaut_face()


@pytest.fixture(scope="module")
def tta_setup(tiny_model: LoadedModel, face: np.ndarray) -> Setup:
    """Tiny model x (plain, grey, flip, flip grey); 6-image gallery of noisy, partly mirrored faces."""
    ensemble = Ensemble([tiny_model], flip=True, grey=True)
    return Setup(ensemble, make_gallery(ensemble, noisy_faces(face, 6)), face)


@pytest.fixture(scope="module")
def flip_setup(tiny_model: LoadedModel, face: np.ndarray) -> Setup:
    """Tiny model x (plain, flip): no grey, so gmx.explain's inputs equal the encoder's exactly."""
    ensemble = Ensemble([tiny_model], flip=True, grey=False)
    return Setup(ensemble, make_gallery(ensemble, noisy_faces(face, 6)), face)
