"""Real data that ships inside packages (nothing is downloaded at run time).

* Texture photos from scikit-image's wheel (``skimage.data``).
* The conte69 cortical surface meshes (32,492 vertices per hemisphere) and the
  Mesulam atlas labels that ship inside the ``brainspace==0.3.0`` wheel. We read
  the files directly (GIFTI through nibabel) and never import brainspace, whose
  imports pull in vtk.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch

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
