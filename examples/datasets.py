"""Real data that ships inside packages (nothing is downloaded at run time).

* Fashion-MNIST (70,000 real 28x28 product photos, 10 classes, MIT licence) from
  Debian's ``dataset-fashion-mnist`` package, installed or unpacked into a cache
  folder (``./tasks.sh demo`` unpacks it), and the collage segmentation task
  built from it.
* Texture photos from scikit-image's wheel (``skimage.data``).
* The conte69 cortical surface meshes (32,492 vertices per hemisphere) and the
  Mesulam atlas labels that ship inside the ``brainspace==0.3.0`` wheel. We read
  the files directly (GIFTI through nibabel) and never import brainspace, whose
  imports pull in vtk.
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_MNIST_DIRS = (
    os.environ.get('FASHION_MNIST_DIR', ''),
    os.path.join(REPO_ROOT, '.cache', 'fashion-mnist', 'usr', 'share', 'datasets',
                 'fashion-mnist'),
    '/usr/share/datasets/fashion-mnist',
)
FASHION_MNIST_HINT = ("mkdir -p .cache/fashion-mnist && cd .cache/fashion-mnist && "
                      "apt-get download dataset-fashion-mnist && "
                      "dpkg -x dataset-fashion-mnist_*.deb .\n"
                      "(or: apt-get install dataset-fashion-mnist; or run ./tasks.sh demo)")
FASHION_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                   'Sneaker', 'Bag', 'Ankle boot')

INSTALL_HINT = {
    'skimage': "pip install scikit-image",
    'nibabel': "pip install nibabel",
    'brainspace': "pip install --no-deps brainspace==0.3.0",
}


class MissingDataError(RuntimeError):
    """A data package is not installed; the message says how to install it."""


def _require(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise MissingDataError(f"the data package '{module}' is not installed; install it "
                               f"with:\n    {INSTALL_HINT[module]}\n(or run ./tasks.sh demo, "
                               "which installs everything)")
    return os.path.dirname(spec.origin)


TEXTURES = ('brick', 'grass', 'gravel', 'camera')


def load_texture(name: str = 'brick') -> torch.Tensor:
    """A real grey-level photo from scikit-image as a float (H, W) tensor in [0, 1]."""
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}; choose one of {TEXTURES}")
    _require('skimage')
    import skimage.data
    image = getattr(skimage.data, name)()
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)


@dataclass
class Cortex:
    """One hemisphere of the conte69 surface: vertices, triangles, atlas labels."""
    pos: torch.Tensor      # (N, 3) vertex coordinates in mm
    faces: torch.Tensor    # (F, 3) triangle vertex indices
    labels: torch.Tensor   # (N,) Mesulam class 0..3, or -1 on the medial wall
    hemisphere: str

    MESULAM_CLASSES = ('paralimbic', 'heteromodal', 'unimodal', 'idiotypic')


def load_cortex(hemisphere: str = 'left') -> Cortex:
    """The conte69 32k surface of one hemisphere with its Mesulam labels."""
    if hemisphere not in ('left', 'right'):
        raise ValueError(f"'hemisphere' must be 'left' or 'right' (got {hemisphere!r})")
    root = os.path.join(_require('brainspace'), 'datasets')
    _require('nibabel')
    import nibabel
    side = 'lh' if hemisphere == 'left' else 'rh'
    surface = nibabel.load(os.path.join(root, 'surfaces', f'conte69_32k_{side}.gii'))
    pos = torch.from_numpy(np.asarray(surface.darrays[0].data, dtype=np.float32))
    faces = torch.from_numpy(np.asarray(surface.darrays[1].data, dtype=np.int64))
    # The atlas file holds both hemispheres, left first; 0 marks the medial wall.
    atlas = np.loadtxt(os.path.join(root, 'parcellations', 'mesulam_conte69.csv'))
    n = pos.size(0)
    part = atlas[:n] if hemisphere == 'left' else atlas[n:2 * n]
    labels = torch.from_numpy(part.astype(np.int64)) - 1
    return Cortex(pos=pos, faces=faces, labels=labels, hemisphere=hemisphere)


def fail_with_hint(error: MissingDataError) -> None:
    """Print a missing-data message without a traceback and exit."""
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(2)


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(split: str = 'train') -> Tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST images ``(n, 28, 28)`` as float in [0, 1] and labels ``(n,)``."""
    if split not in ('train', 'test'):
        raise ValueError(f"'split' must be 'train' or 'test' (got {split!r})")
    prefix = 'train' if split == 'train' else 't10k'
    for folder in FASHION_MNIST_DIRS:
        images = os.path.join(folder, f'{prefix}-images-idx3-ubyte.gz')
        labels = os.path.join(folder, f'{prefix}-labels-idx1-ubyte.gz')
        if folder and os.path.exists(images) and os.path.exists(labels):
            x = torch.from_numpy(_read_idx(images).astype(np.float32) / 255.0)
            y = torch.from_numpy(_read_idx(labels).astype(np.int64))
            return x, y
    raise MissingDataError("Fashion-MNIST was not found (looked in $FASHION_MNIST_DIR, "
                           ".cache/fashion-mnist and /usr/share/datasets/fashion-mnist); get "
                           f"it with:\n    {FASHION_MNIST_HINT}")


@dataclass
class Collage:
    image: torch.Tensor          # (1, S, S) in [0, 1]
    label: torch.Tensor          # (S, S): 0 background, 1 + Fashion-MNIST class for items
    items: List[int]             # indices of the pasted items in their split
    boxes: List[Tuple[int, int, int]]  # (row, col, size) of each pasted item, in paint order


class FashionCollages(torch.utils.data.Dataset):
    """Segmentation collages: Fashion-MNIST items pasted on real texture photos.

    Each ``size x size`` canvas is a random crop of a scikit-image texture photo
    (dimmed to [0, 0.5]) on which 3 to 5 items of one Fashion-MNIST split are
    pasted, each enlarged by one of ``scales`` (nearest neighbour) at a random place. A
    pixel whose item intensity exceeds ``threshold`` takes the item's value and the label
    ``1 + class``; later items cover earlier ones. With ``overlap=False`` an item's box
    never meets an earlier one (each item tries up to :attr:`PLACEMENT_TRIES` random
    places and is left out if none is free), so every item is fully visible. Every
    collage is a pure function of ``(split, seed, index)``, so train and test sets are
    fixed and reproducible, and train collages use train items only (test: test items
    only).

    Class count: 11 (background + 10 item classes). Telling a shirt from a coat or
    a pullover needs the item's whole shape, not a local patch.
    """
    num_classes = 11
    PLACEMENT_TRIES = 50

    def __init__(self, split: str = 'train', length: int = 1000, *, size: int = 128,
                 items: Tuple[int, int] = (3, 5), scales: Tuple[int, ...] = (2, 3),
                 threshold: float = 0.1, seed: int = 0, overlap: bool = True,
                 source: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
        if size < 28 * max(scales):
            raise ValueError(f"'size' must be at least {28 * max(scales)} for scales {scales}")
        self.split, self.length, self.size = split, length, size
        self.items, self.scales, self.threshold, self.seed = items, scales, threshold, seed
        self.overlap = overlap
        self.images, self.classes = source if source is not None else load_fashion_mnist(split)
        self.textures = [load_texture(name) for name in ('brick', 'grass', 'gravel')]

    def __len__(self) -> int:
        return self.length

    def collage(self, index: int) -> Collage:
        if not 0 <= index < self.length:
            raise IndexError(index)
        split_code = 0 if self.split == 'train' else 1
        g = torch.Generator().manual_seed(hash((self.seed, split_code, index)) % (2 ** 62))
        texture = self.textures[int(torch.randint(len(self.textures), (1,), generator=g))]
        r0 = int(torch.randint(texture.size(0) - self.size + 1, (1,), generator=g))
        c0 = int(torch.randint(texture.size(1) - self.size + 1, (1,), generator=g))
        image = texture[r0:r0 + self.size, c0:c0 + self.size].clone() * 0.5
        label = torch.zeros(self.size, self.size, dtype=torch.long)
        count = int(torch.randint(self.items[0], self.items[1] + 1, (1,), generator=g))
        chosen = torch.randint(self.images.size(0), (count,), generator=g).tolist()
        boxes = []
        placed = []
        for item in chosen:
            for _ in range(1 if self.overlap else self.PLACEMENT_TRIES):
                scale = self.scales[int(torch.randint(len(self.scales), (1,), generator=g))]
                side = 28 * scale
                row = int(torch.randint(self.size - side + 1, (1,), generator=g))
                col = int(torch.randint(self.size - side + 1, (1,), generator=g))
                if self.overlap or not any(boxes_intersect((row, col, side), b) for b in boxes):
                    break
            else:
                continue   # no free place found: the collage gets fewer items
            placed.append(item)
            patch = self.images[item].repeat_interleave(scale, 0).repeat_interleave(scale, 1)
            mask = patch > self.threshold
            image[row:row + side, col:col + side][mask] = patch[mask]
            label[row:row + side, col:col + side][mask] = 1 + int(self.classes[item])
            boxes.append((row, col, side))
        return Collage(image=image[None], label=label, items=placed, boxes=boxes)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        c = self.collage(index)
        return c.image, c.label


def boxes_intersect(a: Tuple[int, int, int], b: Tuple[int, int, int]) -> bool:
    """Whether two square boxes ``(row, col, side)`` share a pixel."""
    return (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[2]
            and b[1] < a[1] + a[2])


def cortex_split() -> Tuple[Cortex, Cortex]:
    """Train on the left hemisphere, test on the right one mirrored (x -> -x).

    Mirroring makes the right hemisphere a left-like shape, so the task is to
    transfer labels between two real, different brains halves, not to memorise
    coordinates. Random poses of each view (:func:`graphs.random_pose`) then
    force the labels to be read from the shape.
    """
    left, right = load_cortex('left'), load_cortex('right')
    mirrored = right.pos.clone()
    mirrored[:, 0] = -mirrored[:, 0]
    # Mirroring flips orientation: reverse the triangles' winding to keep normals outward.
    right = Cortex(pos=mirrored, faces=right.faces[:, [0, 2, 1]], labels=right.labels,
                   hemisphere='right (mirrored)')
    return left, right


# --- Synthetic haze on real photos (the dehazing tutorial, examples/dehaze.py) -------------
#
# The photos are real (they ship inside scikit-image's wheel); the haze is synthetic. We add it
# with the atmospheric scattering model I(x) = J(x) t(x) + A (1 - t(x)), t(x) = exp(-beta d(x)).
# No depth map comes with these photos, so d(x) is a made-up but plausible depth: a linear ramp
# (far at the top, tilted up to 30 degrees either way) plus smooth low-frequency noise, rescaled
# to [0.1, 1.0]. Train and test crops come from different photos.

DEHAZE_TRAIN_PHOTOS = ('astronaut', 'coffee', 'immunohistochemistry', 'camera', 'brick', 'grass',
                       'clock')
DEHAZE_TEST_PHOTOS = ('rocket', 'chelsea', 'coins', 'gravel')
DEHAZE_PHOTOS = DEHAZE_TRAIN_PHOTOS + DEHAZE_TEST_PHOTOS


def load_photo(name: str) -> torch.Tensor:
    """A real photo from scikit-image as a float (3, H, W) RGB tensor in [0, 1].

    Grey-level photos are repeated over the three channels.
    """
    if name not in DEHAZE_PHOTOS:
        raise ValueError(f"unknown photo {name!r}; choose one of {DEHAZE_PHOTOS}")
    _require('skimage')
    import skimage.data
    image = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(image[..., :3].transpose(2, 0, 1)))


def add_haze(clean: torch.Tensor, depth: torch.Tensor, airlight, beta) -> Tuple[torch.Tensor,
                                                                                  torch.Tensor]:
    """Atmospheric scattering model: returns ``(hazy, transmission)``.

    ``hazy = clean * t + airlight * (1 - t)`` with ``t = exp(-beta * depth)``; ``clean`` is
    (..., C, H, W), ``depth`` (..., H, W) broadcast over the channels, ``airlight`` and ``beta``
    numbers (or tensors that broadcast like ``depth``).
    """
    transmission = torch.exp(-beta * depth)
    t = transmission.unsqueeze(-3)
    return clean * t + airlight * (1 - t), transmission


def synthetic_depth(size: int, generator: torch.Generator, near: float = 0.1,
                    far: float = 1.0) -> torch.Tensor:
    """A plausible scene depth for a ``size x size`` crop, in ``[near, far]``.

    A linear ramp, far at the top (the sky/horizon side of most photos), tilted by a random
    angle in [-30, 30] degrees, plus 0.5 x a smooth random field (a 4x4 grid of Gaussian values,
    bicubically upsampled); the sum is rescaled to exactly ``[near, far]``.
    """
    angle = (torch.rand((), generator=generator) * 2 - 1) * (np.pi / 6)
    coords = torch.linspace(-0.5, 0.5, size)
    rows, cols = coords.view(-1, 1), coords.view(1, -1)
    ramp = -(torch.cos(angle) * rows + torch.sin(angle) * cols)      # larger = farther (top)
    grid = torch.randn(1, 1, 4, 4, generator=generator)
    noise = torch.nn.functional.interpolate(grid, size=(size, size), mode='bicubic',
                                            align_corners=True)[0, 0]
    noise = noise / noise.std().clamp_min(1e-6)
    raw = ramp / ramp.std().clamp_min(1e-6) + 0.5 * noise
    raw = (raw - raw.min()) / (raw.max() - raw.min()).clamp_min(1e-6)
    return near + (far - near) * raw


def stable_seed(*values: int) -> int:
    """A seed that depends only on ``values`` (unlike ``hash``, stable across Python builds)."""
    return int(np.random.SeedSequence(list(values)).generate_state(1, np.uint64)[0] % (2 ** 62))


@dataclass
class HazySample:
    hazy: torch.Tensor          # (3, S, S) in [0, 1]: the network's input
    clean: torch.Tensor         # (3, S, S): the crop of the real photo, the target
    depth: torch.Tensor         # (S, S) synthetic depth in [0.1, 1.0]
    transmission: torch.Tensor  # (S, S) exp(-beta * depth)
    airlight: float             # A, uniform in airlight_range
    beta: float                 # scattering coefficient, uniform in beta_range
    photo: str                  # which scikit-image photo the crop comes from
    box: Tuple[int, int, int]   # (row, col, size) of the crop in that photo


class HazyCrops(torch.utils.data.Dataset):
    """Synthetic haze on ``size x size`` crops of real scikit-image photos.

    Train crops come from :data:`DEHAZE_TRAIN_PHOTOS` only, test crops from
    :data:`DEHAZE_TEST_PHOTOS` only (no photo is in both). Each sample is a pure function of
    ``(seed, split, index)``: the photo (uniform over the split's photos), the crop position
    (uniform), the depth (:func:`synthetic_depth`), the airlight A (uniform in
    ``airlight_range``, the same grey value in all channels) and beta (uniform in
    ``beta_range``). With depth in [0.1, 1.0] and beta in [0.8, 2.0] the transmission lies in
    [0.135, 0.923]: the farthest parts of a crop are heavily hazed, the nearest only lightly.
    """

    def __init__(self, split: str = 'train', length: int = 1000, *, size: int = 64,
                 airlight_range: Tuple[float, float] = (0.7, 1.0),
                 beta_range: Tuple[float, float] = (0.8, 2.0), seed: int = 0):
        if split not in ('train', 'test'):
            raise ValueError(f"'split' must be 'train' or 'test' (got {split!r})")
        self.split, self.length, self.size, self.seed = split, length, size, seed
        self.airlight_range, self.beta_range = airlight_range, beta_range
        self.photo_names = DEHAZE_TRAIN_PHOTOS if split == 'train' else DEHAZE_TEST_PHOTOS
        self.photos = [load_photo(name) for name in self.photo_names]
        smallest = min(min(p.shape[-2:]) for p in self.photos)
        if size > smallest:
            raise ValueError(f"'size' must be at most {smallest}, the smallest photo's side")

    def __len__(self) -> int:
        return self.length

    def sample(self, index: int) -> HazySample:
        if not 0 <= index < self.length:
            raise IndexError(index)
        split_code = 0 if self.split == 'train' else 1
        g = torch.Generator().manual_seed(stable_seed(self.seed, split_code, index))
        which = int(torch.randint(len(self.photos), (1,), generator=g))
        photo = self.photos[which]
        row = int(torch.randint(photo.size(1) - self.size + 1, (1,), generator=g))
        col = int(torch.randint(photo.size(2) - self.size + 1, (1,), generator=g))
        clean = photo[:, row:row + self.size, col:col + self.size].clone()
        depth = synthetic_depth(self.size, g)
        lo, hi = self.airlight_range
        airlight = float(lo + (hi - lo) * torch.rand((), generator=g))
        lo, hi = self.beta_range
        beta = float(lo + (hi - lo) * torch.rand((), generator=g))
        hazy, transmission = add_haze(clean, depth, airlight, beta)
        return HazySample(hazy=hazy, clean=clean, depth=depth, transmission=transmission,
                          airlight=airlight, beta=beta, photo=self.photo_names[which],
                          box=(row, col, self.size))

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        s = self.sample(index)
        return s.hazy, s.clean
