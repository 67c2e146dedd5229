"""Glass on real photos: a transparent-object segmentation task where context is needed.

In the spirit of Trans10K (the LGA paper's headline task), but built from data that ships in
packages. Each scene is made in four steps (:meth:`GlassScenes.scene`):

1. Background: a crop of a real scikit-image photo, zoomed by a random factor in [1, 2].
   Train scenes use :data:`datasets.DEHAZE_TRAIN_PHOTOS` only, test scenes
   :data:`datasets.DEHAZE_TEST_PHOTOS` only (rocket, chelsea, coins, gravel): no test photo is
   ever seen in training.
2. Objects: 1 or 2 Fashion-MNIST silhouettes (train items for train scenes, test items for test
   scenes; the item's pixels above 0.1, holes filled), enlarged smoothly to a box of 36 to 64
   pixels on a 64x64 canvas, placed where they do not overlap.
3. Glass rendering (:func:`render_glass`): inside an object the background shows through,
   refracted by a displacement field that is the gradient of the blurred silhouette (strong near
   the outline, nearly zero deep inside, like a thick glass slab with rounded edges), faintly
   tinted and softened; a thin rim, bright on the side that faces a random light and dark on the
   other, marks the outline. Deep inside an object a pixel therefore looks like background: only
   the outline, possibly far away, says that it is glass and which of the 10 categories.
4. Labels: 0 for background, ``1 + class`` inside an object; an instance map says which object
   each pixel belongs to (to score objects by size).

:func:`interior_mask` marks the pixels whose whole receptive field sees one label, and
:func:`receptive_field` computes that receptive field from a network's layers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from datasets import (DEHAZE_TEST_PHOTOS, DEHAZE_TRAIN_PHOTOS, boxes_intersect,
                      load_fashion_mnist, load_photo, stable_seed)

#: Fashion-MNIST pixels above this are part of an item's silhouette.
THRESHOLD = 0.1
#: The dark band inside a glass outline: its width (px) and how much light it takes away.
RIM_WIDTH = 2
RIM_DARKNESS = 0.45


@dataclass
class GlassScene:
    image: torch.Tensor      # (3, S, S) in [0, 1]: the glass rendering, the network's input
    photo: torch.Tensor      # (3, S, S): the background crop without glass
    label: torch.Tensor      # (S, S): 0 background, 1 + Fashion-MNIST class inside an object
    instance: torch.Tensor   # (S, S): 0 background, k inside the k-th object (1-based)
    items: List[int]         # indices of the objects' items in their Fashion-MNIST split
    boxes: List[Tuple[int, int, int]]  # (row, col, side) of each object
    photo_name: str


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a ``(..., H, W)`` tensor, reflecting at the borders."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    shape = x.shape
    y = x.reshape(-1, 1, *shape[-2:])
    y = F.pad(y, (radius, radius, radius, radius), mode='reflect')
    y = F.conv2d(y, kernel.view(1, 1, 1, -1))
    y = F.conv2d(y, kernel.view(1, 1, -1, 1))
    return y.reshape(shape)


def image_gradient(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Central differences ``(d/drow, d/dcol)`` of an ``(H, W)`` map (one-sided at borders)."""
    return torch.gradient(x, dim=(0, 1))


def render_glass(photo: torch.Tensor, mask: torch.Tensor, generator: torch.Generator, *,
                 refraction: float = 30.0, height_sigma: float = 2.5) -> torch.Tensor:
    """Render the objects of a ``(S, S)`` boolean ``mask`` as glass over ``photo`` (3, S, S).

    The glass is a slab whose height is the silhouette blurred by ``height_sigma``; light
    through it is displaced by ``refraction`` times the height's gradient (in pixels: up to
    about 5 near the outline, about 0 deep inside). Random per scene: a faint tint (2-7%
    towards a pale colour), the light's direction, the rim's strength. A dark band of
    :data:`RIM_WIDTH` pixels lines the inside of every outline.
    """
    size = photo.size(-1)
    soft = mask.float()
    height = gaussian_blur(soft, height_sigma)
    d_row, d_col = image_gradient(height)
    # Refraction: sample the photo at p - refraction * grad(height) (bilinear, border-clamped).
    rows, cols = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                                torch.arange(size, dtype=torch.float32), indexing='ij')
    src_row = rows - refraction * d_row
    src_col = cols - refraction * d_col
    grid = torch.stack([src_col, src_row], -1) / (size - 1) * 2 - 1
    refracted = F.grid_sample(photo[None], grid[None], mode='bilinear', padding_mode='border',
                              align_corners=True)[0]
    # Glass softens and tints a little; both stay faint so that the interior looks like the
    # background behind it (a strong tint would be a local, per-pixel cue).
    softened = 0.6 * refracted + 0.4 * gaussian_blur(refracted, 0.7)
    tint_colour = 0.7 + 0.3 * torch.rand(3, 1, 1, generator=generator)
    tint = 0.02 + 0.05 * float(torch.rand((), generator=generator))
    glass = softened * (1 - tint) + tint * tint_colour
    inside = gaussian_blur(soft, 0.5)           # anti-aliased silhouette
    image = photo * (1 - inside) + glass * inside
    # Rim, 1: a dark band just inside the outline, as light that enters a glass edge is bent
    # away (the dark border of real glass). It says which side of the outline is glass, locally;
    # it says nothing about a pixel farther inside than the band.
    eroded = -F.max_pool2d(-soft[None, None], 2 * RIM_WIDTH + 1, 1, RIM_WIDTH)[0, 0]
    band = gaussian_blur(soft - eroded, 0.7)
    image = image * (1 - RIM_DARKNESS * band)
    # Rim, 2: the outline's edge strength, lit on the side whose outward normal faces the light.
    e_row, e_col = image_gradient(gaussian_blur(soft, 1.0))
    edge = torch.sqrt(e_row ** 2 + e_col ** 2)
    edge = edge / edge.max().clamp_min(1e-6)
    angle = 2 * math.pi * float(torch.rand((), generator=generator))
    norm = torch.sqrt(d_row ** 2 + d_col ** 2).clamp_min(1e-6)
    facing = (-d_row * math.sin(angle) - d_col * math.cos(angle)) / norm  # outward . light
    strength = 0.35 + 0.25 * float(torch.rand((), generator=generator))
    shade = edge * (strength * facing.clamp_min(0) - 0.8 * strength * (-facing).clamp_min(0)
                    + 0.1)
    return (image + shade).clamp(0, 1)


class GlassScenes(torch.utils.data.Dataset):
    """Glass objects (Fashion-MNIST silhouettes) on crops of real photos; see the module.

    Every scene is a pure function of ``(split, seed, index)``. Items are enlarged to a square
    box of ``side`` pixels, ``side`` uniform in ``sides`` (inclusive), the silhouette filling
    most of the box's height; objects are placed by rejection (up to :attr:`PLACEMENT_TRIES`
    random places each) so that their boxes never meet; one that finds no place is left out.

    Class count: 11 (background + 10 Fashion-MNIST categories).
    """
    num_classes = 11
    PLACEMENT_TRIES = 50

    def __init__(self, split: str = 'train', length: int = 1000, *, size: int = 64,
                 objects: Tuple[int, int] = (1, 2), sides: Tuple[int, int] = (36, 64),
                 zoom: Tuple[float, float] = (1.0, 2.0), seed: int = 0,
                 source: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
                 photos: Optional[Sequence[str]] = None):
        if split not in ('train', 'test'):
            raise ValueError(f"'split' must be 'train' or 'test' (got {split!r})")
        if length < 0:
            raise ValueError(f"'length' must be >= 0 (got {length})")
        if not 1 <= objects[0] <= objects[1]:
            raise ValueError(f"'objects' must be (min, max) with 1 <= min <= max (got {objects})")
        if not 8 <= sides[0] <= sides[1]:
            raise ValueError(f"'sides' must be (min, max) with 8 <= min <= max (got {sides})")
        if sides[1] > size:
            raise ValueError(f"an object's box (up to {sides[1]} px) must fit in the canvas "
                             f"({size} px): make 'size' at least {sides[1]} or 'sides' smaller")
        if not 0 < zoom[0] <= zoom[1]:
            raise ValueError(f"'zoom' must be (min, max) with 0 < min <= max (got {zoom})")
        self.split, self.length, self.size, self.seed = split, length, size, seed
        self.objects, self.sides, self.zoom = objects, sides, zoom
        self.photo_names = tuple(photos) if photos is not None else (
            DEHAZE_TRAIN_PHOTOS if split == 'train' else DEHAZE_TEST_PHOTOS)
        self.photos = [load_photo(name) for name in self.photo_names]
        smallest = min(min(p.shape[-2:]) for p in self.photos)
        if math.ceil(size * zoom[1]) > smallest:
            raise ValueError(f"a crop of {size} px zoomed up to {zoom[1]}x needs "
                             f"{math.ceil(size * zoom[1])} px, more than the smallest photo's "
                             f"side ({smallest} px)")
        self.images, self.classes = source if source is not None else load_fashion_mnist(split)

    def __len__(self) -> int:
        return self.length

    def silhouette(self, item: int, side: int) -> torch.Tensor:
        """The item's filled silhouette enlarged (bilinearly, then thresholded) to side x side."""
        from scipy.ndimage import binary_fill_holes
        big = F.interpolate(self.images[item][None, None], size=(side, side), mode='bilinear',
                            align_corners=False)[0, 0]
        return torch.from_numpy(binary_fill_holes((big > THRESHOLD).numpy()))

    def scene(self, index: int) -> GlassScene:
        if not 0 <= index < self.length:
            raise IndexError(index)
        split_code = 0 if self.split == 'train' else 1
        g = torch.Generator().manual_seed(stable_seed(self.seed, split_code, index))
        s = self.size
        which = int(torch.randint(len(self.photos), (1,), generator=g))
        photo = self.photos[which]
        zoom = self.zoom[0] + (self.zoom[1] - self.zoom[0]) * float(torch.rand((), generator=g))
        crop = min(math.ceil(s * zoom), min(photo.shape[-2:]))
        r0 = int(torch.randint(photo.size(1) - crop + 1, (1,), generator=g))
        c0 = int(torch.randint(photo.size(2) - crop + 1, (1,), generator=g))
        background = photo[:, r0:r0 + crop, c0:c0 + crop]
        if crop != s:
            background = F.interpolate(background[None], size=(s, s), mode='bilinear',
                                       align_corners=False, antialias=True)[0].clamp(0, 1)
        label = torch.zeros(s, s, dtype=torch.long)
        instance = torch.zeros(s, s, dtype=torch.long)
        count = int(torch.randint(self.objects[0], self.objects[1] + 1, (1,), generator=g))
        chosen = torch.randint(self.images.size(0), (count,), generator=g).tolist()
        boxes: List[Tuple[int, int, int]] = []
        placed: List[int] = []
        for item in chosen:
            for _ in range(self.PLACEMENT_TRIES):
                side = int(torch.randint(self.sides[0], self.sides[1] + 1, (1,), generator=g))
                row = int(torch.randint(s - side + 1, (1,), generator=g))
                col = int(torch.randint(s - side + 1, (1,), generator=g))
                if not any(boxes_intersect((row, col, side), b) for b in boxes):
                    break
            else:
                continue
            mask = self.silhouette(item, side)
            label[row:row + side, col:col + side][mask] = 1 + int(self.classes[item])
            instance[row:row + side, col:col + side][mask] = len(placed) + 1
            placed.append(item)
            boxes.append((row, col, side))
        image = render_glass(background, instance > 0, g)
        return GlassScene(image=image, photo=background, label=label, instance=instance,
                          items=placed, boxes=boxes, photo_name=self.photo_names[which])

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        sc = self.scene(index)
        return sc.image, sc.label


# --- Receptive field and interior -----------------------------------------------------------

_NEUTRAL = (nn.BatchNorm2d, nn.ReLU, nn.Identity, nn.Dropout, nn.GELU, nn.Sigmoid)


def receptive_field(path: Iterable[nn.Module]) -> int:
    """The receptive field (side, in input pixels) of a chain of layers, from the layers.

    Walks the chain's layers (``nn.Sequential`` opened recursively) from the output back to the
    input, counting how many consecutive pixels of each layer's input a window of ``n``
    consecutive output pixels needs, starting from one output pixel: a convolution or pooling
    of kernel ``k``, stride ``s``, dilation ``d`` needs ``(n - 1) s + (k - 1) d + 1``; a
    bilinear (``align_corners=False``) or nearest ``nn.Upsample`` by an integer factor needs
    the most its input window can span over the output window's possible phases (bilinear reads
    2 neighbours, so 1 output pixel reads 2); batch norm, activations, dropout and identities
    need ``n``. The answer is the worst case over an output pixel's position, which is what an
    interior mask needs. Any other layer (an attention block, a linear layer over the whole
    map) raises a ``ValueError``: its field cannot be read from its shape. For a network with
    several paths (skips), take the largest over the paths (:meth:`GlassNet.paths`).
    """
    n = 1
    for module in reversed(list(_leaves(path))):
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, d = (_pair(getattr(module, name, 1)) for name in
                       ('kernel_size', 'stride', 'dilation'))
            if k[0] != k[1] or s[0] != s[1] or d[0] != d[1]:
                raise ValueError(f"cannot compute the receptive field of {module}: only square "
                                 "kernels, strides and dilations are supported")
            n = (n - 1) * s[0] + (k[0] - 1) * d[0] + 1
        elif isinstance(module, nn.Upsample):
            factor = module.scale_factor
            if isinstance(factor, tuple):
                factor = factor[0] if len(set(factor)) == 1 else None
            if factor is None or float(factor) != int(factor) or factor < 1:
                raise ValueError(f"cannot compute the receptive field of {module}: give one "
                                 "integer scale_factor, not a size")
            if module.mode not in ('bilinear', 'nearest') or getattr(module, 'align_corners',
                                                                     None):
                raise ValueError(f"cannot compute the receptive field of {module}: only "
                                 "'nearest' and 'bilinear' with align_corners=False")
            n = max(_upsampled_span(start, n, int(factor), module.mode)
                    for start in range(int(factor)))
        elif not isinstance(module, _NEUTRAL):
            raise ValueError(f"cannot compute the receptive field of {type(module).__name__}: "
                             "only convolutions, pooling, bilinear/nearest upsampling, batch "
                             "norm, activations and identities have a field that their shape "
                             "gives (an attention or global block may see the whole image)")
    return n


def _leaves(path: Iterable[nn.Module]) -> Iterable[nn.Module]:
    for module in path:
        if isinstance(module, nn.Sequential):
            yield from _leaves(module)
        else:
            yield module


def _upsampled_span(start: int, n: int, factor: int, mode: str) -> int:
    """Input pixels read by output pixels ``start .. start + n - 1`` of an upsampling."""
    if mode == 'nearest':
        return (start + n - 1) // factor - start // factor + 1
    # Bilinear, align_corners=False: output i sits at input (i + 0.5) / factor - 0.5 and reads
    # the pixels on either side of it.
    first = math.floor((start + 0.5) / factor - 0.5)
    last = math.floor((start + n - 1 + 0.5) / factor - 0.5) + 1
    return last - first + 1


def _pair(value) -> Tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)  # type: ignore


def interior_mask(label: torch.Tensor, receptive_field: int) -> torch.Tensor:
    """Pixels whose whole ``receptive_field x receptive_field`` window holds one label.

    ``label`` is ``(H, W)`` or ``(B, H, W)``; the window is centred on the pixel (so its
    half-side, the radius, is ``(receptive_field - 1) // 2``) and clipped to the image (outside
    the image is not an outline). Such a pixel is farther from every outline than the network
    sees: a network with this receptive field cannot tell from its input window whether the
    pixel is inside glass or which object it belongs to. Equivalently, the Chebyshev distance
    from the pixel to the nearest pixel of another label exceeds the radius.
    """
    if receptive_field < 1:
        raise ValueError(f"'receptive_field' must be >= 1 (got {receptive_field})")
    radius = (receptive_field - 1) // 2
    squeeze = label.dim() == 2
    x = (label[None] if squeeze else label).float()[:, None]
    if radius == 0:
        out = torch.ones_like(x, dtype=torch.bool)
    else:
        k = 2 * radius + 1
        # max_pool2d pads with -inf, so the clipped window ignores the outside of the image.
        high = F.max_pool2d(x, k, 1, radius)
        low = -F.max_pool2d(-x, k, 1, radius)
        out = (high == x) & (low == x)
    return out[:, 0][0] if squeeze else out[:, 0]


def object_sides(boxes: Sequence[Tuple[int, int, int]]) -> List[int]:
    """The box side (pixels) of each object: the size the scene drew for it."""
    return [side for _, _, side in boxes]


def stack_scenes(dataset: GlassScenes) -> dict:
    """Build every scene of a dataset once into tensors (images, labels, instances, sizes)."""
    scenes = [dataset.scene(i) for i in range(len(dataset))]
    sides = torch.zeros(len(scenes), max([len(sc.boxes) for sc in scenes] + [1]),
                        dtype=torch.long)
    for i, sc in enumerate(scenes):
        for k, side in enumerate(object_sides(sc.boxes)):
            sides[i, k] = side
    return {'images': torch.stack([sc.image for sc in scenes]),
            'labels': torch.stack([sc.label for sc in scenes]),
            'instances': torch.stack([sc.instance for sc in scenes]),
            'sides': sides}
