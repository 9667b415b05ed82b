"""synthfaces: the default offline dataset, faces drawn with OpenCV in CelebA's *aligned* layout.

Each face is drawn from its own random generator, `np.random.default_rng([seed, index])`, so
image i is the same whatever the number of worker processes. Drawing a face has three steps:

1. `_sample_style` makes every random choice up front (geometry, colours, hair, accessories,
   pose, camera) into a plain `Style`;
2. `_render` draws that style, deterministically;
3. `_attributes` derives CelebA's 40 attributes from the same `Style`,

so the attributes say what was drawn and nothing else. The face is built in a *canonical* frame
whose landmarks sit near CelebA's mean aligned landmarks; every shape then passes through one
random similarity (the pose jitter) on its way to the image, and so do the landmarks. The
landmarks are the points the drawing is built from (pupil centres, nose tip, mouth corners), so
they are true to the image by construction.

The output is CelebA's published layout (see `celeba_format`): `img_align_celeba.zip` of 178x218
JPEGs and the three annotation files, so the rest of the pipeline runs the same code as on CelebA.

Speed matters (the default run draws 10,000 faces, and a test run draws them too): a face costs
about a millisecond, so the code avoids per-call numpy overhead where it adds up: random numbers
are drawn in one block per face, point arrays come from cached templates, all polygons are
mapped through the pose in a single matrix product, and ellipses are left to OpenCV.

Worker processes start with 'forkserver' (or 'spawn'), so a script that calls
`write_synthfaces` with workers != 1 needs the usual `if __name__ == "__main__":` guard.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import time
import zipfile
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from rnngan.data.celeba_format import (
    ATTR_FILE, ATTRIBUTES, IMAGE_DIR, IMAGE_HEIGHT, IMAGE_WIDTH, IMAGE_ZIP, LANDMARK_FILE,
    PARTITION_FILE, image_name, write_attributes, write_landmarks, write_partition,
)
from rnngan.io import atomic_path, log, progress

# CelebA's mean aligned landmarks on the 178x218 image: left eye, right eye, nose, left mouth
# corner, right mouth corner ("left" = image left, as in CelebA's lefteye_x columns).
MEAN_LANDMARKS = np.array([[69.0, 111.0], [108.0, 111.0], [88.0, 136.0], [72.0, 152.0],
                           [105.0, 152.0]])
_LANDMARK_CENTRE = MEAN_LANDMARKS.mean(axis=0)   # the pose jitter turns and scales about it
SPLIT_FRACTIONS = (0.8, 0.1)      # train, val; the rest is test (CelebA: 80.3 / 9.8 / 9.9 %)
CHUNK = 64                        # faces per task sent to a worker process
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: same seed, byte-identical zip
_SHIFT = 4                        # fixed-point bits for OpenCV drawing: positions in 1/16 px
_ONE = 1 << _SHIFT

Colour = tuple[float, float, float]   # BGR, as OpenCV draws

# Skin tones from light to dark; a face interpolates between neighbours.
_SKIN = ((215, 228, 250), (180, 200, 240), (150, 180, 226), (115, 155, 205), (80, 120, 170),
         (55, 85, 130), (40, 60, 95))
_PALE_BELOW = 0.12                # skin position (0 lightest .. 1 darkest) below which Pale_Skin
# name -> (BGR, CelebA attribute or None: CelebA has no attribute for red hair)
_HAIR = {
    "black": ((22, 20, 24), "Black_Hair"),
    "dark_brown": ((30, 42, 62), "Brown_Hair"),
    "brown": ((45, 70, 110), "Brown_Hair"),
    "auburn": ((40, 65, 140), None),
    "blond": ((110, 180, 220), "Blond_Hair"),
    "light_blond": ((150, 205, 232), "Blond_Hair"),
    "gray": ((150, 150, 155), "Gray_Hair"),
    "white": ((205, 208, 212), "Gray_Hair"),
}
_IRIS = ((25, 50, 85), (35, 70, 110), (50, 100, 120), (70, 110, 80), (150, 115, 60),
         (120, 110, 100), (20, 30, 45))
_EYESHADOW = ((120, 60, 110), (60, 80, 120), (140, 110, 90), (90, 60, 60))
_GLASSES = ((20, 20, 20), (30, 45, 70), (150, 150, 150), (60, 150, 190), (90, 40, 40))
_LIPSTICK = ((45, 30, 185), (95, 70, 200), (60, 40, 140), (110, 90, 215))
_GOLD, _SILVER = (40, 175, 220), (195, 195, 200)
_NOISE_LEVELS = (1.0, 1.7, 2.5)   # sensor noise, standard deviation in grey levels
_NOISE_MARGIN = 512               # the noise tile is this much taller than an image
# lower-face superellipse exponents (a few values, so their outlines are computed once)
_JAWS = {False: (1.7, 1.9, 2.1, 2.3), True: (2.0, 2.2, 2.4, 2.6, 2.8)}


@dataclass(slots=True)
class Style:
    """Every random choice for one face; `_render` and `_attributes` read only this."""
    # who
    male: bool
    old: bool
    skin_pos: float               # 0 lightest .. 1 darkest
    skin: Colour
    # canonical geometry (before the pose jitter)
    landmarks: np.ndarray         # 5 x 2, canonical frame
    face_cx: float
    face_y0: float                # the face's widest line, between forehead and jaw halves
    face_w: float                 # half width
    face_up: float                # y0 minus the top of the forehead
    face_down: float              # chin minus y0
    jaw: float                    # superellipse exponent of the lower face: <2 pointed, >2 square
    # eyes and brows
    eye_w: float                  # half width of the eye opening
    eye_h: float                  # height of the upper lid above the pupil
    iris_r: float
    iris: Colour
    brow_thick: float
    brow_arch: float
    brow_gap: float               # pupil to brow
    brow: Colour
    # nose and mouth
    nose_w: float
    smile: bool
    mouth_gap: float              # 0 closed; a few px parted; more for an open smile
    lip_up: float
    lip_down: float
    lips: Colour
    lipstick: bool
    # hair
    hair_name: str
    hair: Colour
    front: str                    # normal | bangs | receding | bald
    back: str                     # none | medium | long
    hairline: float               # y of the hairline's highest point (canonical)
    hair_top: float               # how far hair rises above the forehead
    hair_side: float              # how far hair stands out at the sides
    hair_part: float              # horizontal shift of the hairline's highest point
    wavy: bool
    wave_phase: float
    # facial hair, make-up, accessories, clothes
    beard: str                    # none | full | goatee | stubble
    moustache: bool
    sideburns: bool
    rosy: bool
    eyeshadow: Colour | None      # heavy make-up
    bags: bool
    glasses: Colour | None
    glasses_w: float
    glasses_h: float
    glasses_shape: float          # superellipse exponent of the rims: 2 oval .. 4 rectangular
    earrings: Colour | None
    necklace: Colour | None
    necktie: Colour | None
    clothes: Colour
    # scene and camera
    background: np.ndarray        # 2 x 2 x 3 uint8 corner colours, interpolated bilinearly
    light: float                  # -1..1: side the light comes from, and how strongly
    pose: np.ndarray              # 2 x 3 similarity from canonical to image coordinates
    blur: float                   # Gaussian sigma in px; 0 = the mild default 3x3 blur
    noise: int                    # index into the noise levels
    noise_at: int                 # first row of this face's window on the shared noise tile


# --------------------------------------------------------------------------- small helpers

class _Dice:
    """Uniform numbers from `rng`, drawn a block at a time: one numpy call per scalar would cost
    more than drawing the face. The sequence depends only on the generator's state."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._left: Iterator[float] = iter(())

    def u(self) -> float:
        try:
            return next(self._left)
        except StopIteration:
            self._left = iter(self._rng.random(128).tolist())
            return next(self._left)

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.u()

    def chance(self, p: float) -> bool:
        return self.u() < p

    def choice(self, options: tuple):
        return options[min(int(self.u() * len(options)), len(options) - 1)]

    def pick(self, weights: dict[str, float]) -> str:
        """A key, with probability proportional to its weight."""
        x = self.u() * sum(weights.values())
        for key, w in weights.items():
            x -= w
            if x < 0:
                return key
        return key


def _mix(a, b, t: float) -> Colour:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def _shade(c, f: float) -> Colour:
    return (min(255.0, c[0] * f), min(255.0, c[1] * f), min(255.0, c[2] * f))


@lru_cache(maxsize=None)
def _grid(n: int, a: float = 0.0, b: float = 1.0) -> np.ndarray:
    return _frozen(np.linspace(a, b, n))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False                   # cached and shared: never modified in place
    return a


@lru_cache(maxsize=None)
def _circle(n: int, power: float = 2.0) -> np.ndarray:
    """n points around the unit circle, or a superellipse (power > 2 is squarer), as n x 2."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    if power != 2.0:
        c, s = np.sign(c) * np.abs(c) ** (2 / power), np.sign(s) * np.abs(s) ** (2 / power)
    return _frozen(np.stack([c, s], axis=1))


def _xy(x, y) -> np.ndarray:
    """An N x 2 array from x and y (arrays or scalars); cheaper than np.stack."""
    n = len(x) if np.ndim(x) else len(y)
    out = np.empty((n, 2))
    out[:, 0] = x
    out[:, 1] = y
    return out


def _ring(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The band between two curves that run the same way (the last axis but one): one forward,
    the other back. Works on stacks of curves too."""
    return np.concatenate([outer, inner[..., ::-1, :]], axis=-2)


# --------------------------------------------------------------------------- sampling the style

def _skin(pos: float) -> Colour:
    x = pos * (len(_SKIN) - 1)
    i = min(int(x), len(_SKIN) - 2)
    return _mix(_SKIN[i], _SKIN[i + 1], x - i)


def _landmarks(d: _Dice, smile: bool) -> np.ndarray:
    """Canonical landmarks: CelebA's mean with a small natural shape variation.

    Each point moves by at most about 0.7 px (under 2 % of the 39 px eye distance), because the
    aligner maps landmarks onto its template with a least-squares similarity and expects small
    residuals (under 1 px at 64x64 after CelebA's integer rounding); the large changes of
    position, size and angle come from the pose similarity instead.
    """
    cx = 88.5
    eye_half = 19.5 * d.uniform(0.99, 1.01)
    eye_y = 111.0 + d.uniform(-0.25, 0.25)
    nose = (cx + d.uniform(-0.5, 0.5), 136.0 + d.uniform(-0.5, 0.5))
    # a smile pulls the mouth corners up and out a little
    mouth_half = 16.5 + d.uniform(-0.5, 0.5) + (0.3 if smile else 0.0)
    mouth_y = 152.0 + d.uniform(-0.5, 0.5) - (0.4 if smile else 0.0)
    mouth_cx = cx + d.uniform(-0.25, 0.25)
    return np.array([[cx - eye_half, eye_y], [cx + eye_half, eye_y], nose,
                     [mouth_cx - mouth_half, mouth_y], [mouth_cx + mouth_half, mouth_y]])


def _pose(d: _Dice) -> np.ndarray:
    """A small similarity about the landmarks' centre: rotation up to 8 degrees (triangular,
    so most faces are nearly upright), scale within 6 %, shift within 3 px."""
    angle = math.radians(8.0 * (d.u() + d.u() - 1.0))
    scale = d.uniform(0.94, 1.06)
    shift = np.array([d.uniform(-3, 3), d.uniform(-3, 3)])
    centre = _LANDMARK_CENTRE
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)],
                            [math.sin(angle), math.cos(angle)]])
    return np.hstack([rot, (centre + shift - rot @ centre)[:, None]])


def _background(d: _Dice) -> np.ndarray:
    """Corner colours of a soft gradient: any hue, mostly muted, sometimes one flat colour."""
    hsv = np.array([[[d.uniform(0, 180), d.uniform(0, 170), d.uniform(45, 245)]]], dtype=np.uint8)
    base = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
    if d.chance(0.2):
        factors = np.ones((2, 2, 1))
    else:
        factors = np.array([d.uniform(0.55, 1.25) for _ in range(4)]).reshape(2, 2, 1)
    return np.clip(base * factors, 0, 255).astype(np.uint8)


def _hair(d: _Dice, male: bool, old: bool) -> tuple[str, str, str]:
    """(colour name, front style, back length), with the usual correlations to sex and age."""
    if male:
        front = d.pick({"normal": 0.62, "bangs": 0.1, "receding": 0.12 + 0.2 * old,
                        "bald": 0.07 + 0.2 * old})
        back = "none" if front == "bald" else d.pick({"none": 0.8, "medium": 0.13, "long": 0.07})
    else:
        front = d.pick({"normal": 0.68, "bangs": 0.3, "receding": 0.02 + 0.06 * old})
        back = d.pick({"none": 0.1, "medium": 0.35, "long": 0.55})
    if old and d.chance(0.7):
        colour = "gray" if d.chance(0.6) else "white"
    else:
        colour = d.pick({"black": 0.3, "dark_brown": 0.17, "brown": 0.16, "auburn": 0.07,
                         "blond": 0.12 + 0.08 * (not male), "light_blond": 0.05, "gray": 0.03})
    return colour, front, back


def _hairline(d: _Dice, front: str, eye_y: float, top: float) -> float:
    if front == "bangs":
        return eye_y - d.uniform(18, 24)          # the fringe stops just above the brows
    if front == "receding":
        return top + d.uniform(6, 10)             # just below the top of the forehead
    return eye_y - d.uniform(31, 40)


def _mouth_shape(d: _Dice, smile: bool) -> float:
    """The lips' parting: most smiles open on the teeth, a few neutral mouths are ajar."""
    if smile:
        return d.uniform(2.5, 8.0) if d.chance(0.8) else 0.0
    return d.uniform(1.2, 2.6) if d.chance(0.2) else 0.0


def _sample_style(rng: np.random.Generator) -> Style:
    d = _Dice(rng)
    male, old, smile = d.chance(0.45), d.chance(0.22), d.chance(0.48)
    skin_pos = d.u()
    skin = _skin(skin_pos)
    lm = _landmarks(d, smile)
    eye_y, mouth_y = (lm[0, 1] + lm[1, 1]) / 2, (lm[3, 1] + lm[4, 1]) / 2
    top = eye_y - d.uniform(47, 56)
    chin = mouth_y + d.uniform(25, 33) + 3 * male
    y0 = eye_y + d.uniform(4, 10)

    hair_name, front, back = _hair(d, male, old)
    hair = _HAIR[hair_name][0]
    # light hair keeps darker brows
    brow = _mix(hair, (30, 40, 55), 0.5 if hair_name in ("blond", "light_blond", "white") else 0.15)

    beard, moustache = "none", False
    if male:
        beard = d.pick({"none": 0.55, "full": 0.17, "goatee": 0.12, "stubble": 0.16})
        moustache = beard in ("full", "goatee") or d.chance(0.12)
    lipstick = not male and d.chance(0.55)
    eyeshadow = d.choice(_EYESHADOW) if lipstick and d.chance(0.5) else None
    lips = _mix(_shade(skin, 0.82), (70, 60, 170), 0.28)
    if lipstick:
        lips = _mix(lips, d.choice(_LIPSTICK), 0.8)

    ears_visible = back == "none"
    earrings = d.choice((_GOLD, _SILVER)) if ears_visible and not male and d.chance(0.6) else None
    necklace = d.choice((_GOLD, _SILVER)) if not male and d.chance(0.25) else None
    clothes = (d.uniform(10, 230), d.uniform(10, 230), d.uniform(10, 230))
    necktie = None
    if male and d.chance(0.25):
        necktie = (d.uniform(20, 200), d.uniform(20, 200), d.uniform(20, 200))
        clothes = _shade(clothes, 0.35)           # a dark suit around a white shirt

    return Style(
        male=male, old=old, skin_pos=skin_pos, skin=skin, landmarks=lm,
        face_cx=88.5 + d.uniform(-1, 1), face_y0=y0,
        face_w=d.uniform(41, 50) + 1.5 * male, face_up=y0 - top, face_down=chin - y0,
        jaw=d.choice(_JAWS[male]),
        eye_w=d.uniform(7.5, 9.0),
        eye_h=d.uniform(2.0, 2.7) if d.chance(0.15) else d.uniform(3.3, 4.6),
        iris_r=d.uniform(3.6, 4.6), iris=d.choice(_IRIS),
        brow_thick=d.uniform(2.0, 3.2) + (d.uniform(1.0, 2.0) if d.chance(0.25) else 0.0),
        brow_arch=d.uniform(0.5, 4.0), brow_gap=d.uniform(9.5, 13.0), brow=brow,
        nose_w=d.uniform(7.5, 9.0) if d.chance(0.2) else d.uniform(5.0, 7.0),
        smile=smile, mouth_gap=_mouth_shape(d, smile),
        lip_up=d.uniform(2.0, 3.5) + 0.6 * (not male), lip_down=d.uniform(3.0, 5.5),
        lips=lips, lipstick=lipstick,
        hair_name=hair_name, hair=hair, front=front, back=back,
        hairline=_hairline(d, front, eye_y, top), hair_top=d.uniform(3, 9) + 6 * (back != "none"),
        hair_side=d.uniform(2, 8) + 3 * (back != "none"), hair_part=d.uniform(-12, 12),
        wavy=d.chance(0.35), wave_phase=d.uniform(0, 2 * math.pi),
        beard=beard, moustache=moustache, sideburns=male and front != "bald" and d.chance(0.3),
        rosy=d.chance(0.12 + 0.2 * (not male)), eyeshadow=eyeshadow, bags=old and d.chance(0.6),
        glasses=d.choice(_GLASSES) if d.chance(0.22 + 0.2 * old) else None,
        glasses_w=d.uniform(11, 14), glasses_h=d.uniform(8, 11), glasses_shape=d.choice((2.0, 2.8, 4.0)),
        earrings=earrings, necklace=necklace, necktie=necktie, clothes=clothes,
        background=_background(d), light=d.uniform(-1, 1), pose=_pose(d),
        blur=d.uniform(1.6, 2.4) if d.chance(0.05) else 0.0,
        noise=min(int(d.u() * len(_NOISE_LEVELS)), len(_NOISE_LEVELS) - 1),
        noise_at=int(d.u() * _NOISE_MARGIN),
    )


# --------------------------------------------------------------------------- attributes

def _attributes(s: Style) -> np.ndarray:
    """CelebA's 40 attributes: +1 exactly where the drawing shows them, all others -1
    (Attractive, Double_Chin, High_Cheekbones, Pointy_Nose, Wearing_Hat are never drawn)."""
    has_hair = s.front != "bald"
    shown = {
        "5_o_Clock_Shadow": s.beard == "stubble",
        "Arched_Eyebrows": s.brow_arch > 2.8,
        "Bags_Under_Eyes": s.bags,
        "Bald": not has_hair,
        "Bangs": s.front == "bangs",
        "Big_Lips": s.lip_up + s.lip_down > 8.0,
        "Big_Nose": s.nose_w > 7.25,
        "Blurry": s.blur > 0,
        "Bushy_Eyebrows": s.brow_thick > 3.6,
        "Chubby": s.face_w > 49,
        "Eyeglasses": s.glasses is not None,
        "Goatee": s.beard == "goatee",
        "Heavy_Makeup": s.eyeshadow is not None,
        "Male": s.male,
        "Mouth_Slightly_Open": s.mouth_gap > 0,
        "Mustache": s.moustache,
        "Narrow_Eyes": s.eye_h < 3.0,
        "No_Beard": s.beard == "none" and not s.moustache,
        "Oval_Face": s.jaw < 2.0 and s.face_up + s.face_down > 2.6 * s.face_w,
        "Pale_Skin": s.skin_pos < _PALE_BELOW,
        "Receding_Hairline": s.front == "receding",
        "Rosy_Cheeks": s.rosy,
        "Sideburns": s.sideburns,
        "Smiling": s.smile,
        "Straight_Hair": has_hair and s.back != "none" and not s.wavy,
        "Wavy_Hair": has_hair and s.back != "none" and s.wavy,
        "Wearing_Earrings": s.earrings is not None,
        "Wearing_Lipstick": s.lipstick,
        "Wearing_Necklace": s.necklace is not None,
        "Wearing_Necktie": s.necktie is not None,
        "Young": not s.old,
    }
    colour = _HAIR[s.hair_name][1]
    if has_hair and colour is not None:
        shown[colour] = True
    out = np.full(len(ATTRIBUTES), -1, dtype=np.int8)
    out[[_ATTRIBUTE_INDEX[name] for name, on in shown.items() if on]] = 1
    return out


_ATTRIBUTE_INDEX = {name: i for i, name in enumerate(ATTRIBUTES)}


# --------------------------------------------------------------------------- drawing

class _Pen:
    """Records shapes in the canonical frame and draws them in order through the pose.

    Polygons are mapped in one matrix product over all their points at `draw` time; ellipses
    are mapped as centre, axes and angle (a similarity keeps an ellipse an ellipse) and drawn by
    OpenCV itself, which costs less than building their points in numpy. Everything is
    antialiased, at 1/16 px precision.
    """

    def __init__(self, pose: np.ndarray):
        (a, b, tx), (c, d, ty) = pose.tolist()
        self.pose = pose
        self._affine = (a, b, tx, c, d, ty)
        self.scale = math.hypot(a, c)
        self.angle = math.degrees(math.atan2(c, a))
        self._points: list[np.ndarray] = []
        self._ops: list[tuple] = []
        self._n = 0

    def _spans(self, shapes) -> list[tuple[int, int]]:
        spans = []
        for pts in shapes:
            self._points.append(pts)
            spans.append((self._n, self._n + len(pts)))
            self._n += len(pts)
        return spans

    def fill(self, colour, *shapes: np.ndarray) -> None:
        """Fill polygons in one call: they must not overlap (an inner contour makes a hole)."""
        self._ops.append(("fill", self._spans(shapes), colour, None))

    def tint(self, colour, alpha: float, *shapes: np.ndarray) -> None:
        """Fill polygons with partial opacity, for stubble, blush and eyeshadow."""
        self._ops.append(("tint", self._spans(shapes), colour, alpha))

    def line(self, colour, thickness: float, *shapes: np.ndarray) -> None:
        width = max(1, int(round(thickness * self.scale)))
        self._ops.append(("line", self._spans(shapes), colour, width))

    def ellipse(self, colour, cx: float, cy: float, ax: float, ay: float) -> None:
        """A filled axis-aligned ellipse (in the canonical frame)."""
        a, b, tx, c, d, ty = self._affine
        k = self.scale * _ONE
        centre = (int(round((a * cx + b * cy + tx) * _ONE)), int(round((c * cx + d * cy + ty) * _ONE)))
        self._ops.append(("ellipse", centre, colour, (int(round(ax * k)), int(round(ay * k)))))

    def draw(self, img: np.ndarray) -> None:
        pts = np.concatenate(self._points)
        fixed = np.rint((pts @ self.pose[:, :2].T + self.pose[:, 2]) * _ONE).astype(np.int32)
        for kind, where, colour, arg in self._ops:
            if kind == "ellipse":
                cv2.ellipse(img, where, arg, self.angle, 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)
                continue
            shapes = [fixed[a:b] for a, b in where]
            if kind == "fill":
                cv2.fillPoly(img, shapes, colour, cv2.LINE_AA, _SHIFT)
            elif kind == "line":
                cv2.polylines(img, shapes, False, colour, arg, cv2.LINE_AA, _SHIFT)
            else:
                _tint(img, shapes, colour, arg)


def _tint(img: np.ndarray, shapes: list[np.ndarray], colour, alpha: float) -> None:
    """Blend filled polygons into the image, touching only their bounding box."""
    allpts = np.concatenate(shapes) >> _SHIFT
    x0, y0 = np.maximum(allpts.min(axis=0) - 1, 0)
    x1, y1 = allpts.max(axis=0) + 2
    roi = img[y0:y1, x0:x1]
    if roi.size == 0:
        return
    overlay = roi.copy()
    offset = np.array([x0, y0], dtype=np.int32) << _SHIFT
    cv2.fillPoly(overlay, [s - offset for s in shapes], colour, cv2.LINE_AA, _SHIFT)
    cv2.addWeighted(overlay, alpha, roi, 1 - alpha, 0, dst=roi)


class _Face:
    """The landmarks as plain floats, named: the drawing code reads them constantly."""

    def __init__(self, s: Style):
        (self.lx, self.ly), (self.rx, self.ry), (self.nx, self.ny), (self.mlx, self.mly), \
            (self.mrx, self.mry) = s.landmarks.tolist()
        self.eye_y = (self.ly + self.ry) / 2
        self.chin = s.face_y0 + s.face_down


@lru_cache(maxsize=None)
def _outline_template(jaw: float, n: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit face outline: x, and y split into its upper (forehead) and lower (jaw) parts.

    The forehead is a half ellipse, the lower face a half superellipse of exponent `jaw`
    (< 2 pointed chin, > 2 square jaw). Points run from the right cheek down round the chin to
    the left and over the top, so the first n/2 + 1 are the jaw.
    """
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    lower = s >= 0
    k = 2 / jaw
    x = np.where(lower, np.sign(c) * np.abs(c) ** k, c)
    return _frozen(x), _frozen(np.where(lower, 0.0, s)), _frozen(np.where(lower, np.abs(s) ** k, 0.0))


def _face_outlines(s: Style, grows: tuple[float, ...]) -> np.ndarray:
    """The face outline grown (or shrunk) by each of `grows` px: len(grows) x 48 x 2."""
    x, y_up, y_down = _outline_template(s.jaw)
    g = np.array(grows)[:, None]
    out = np.empty((len(grows), len(x), 2))
    out[..., 0] = s.face_cx + (s.face_w + g) * x
    out[..., 1] = s.face_y0 + (s.face_up + g) * y_up + (s.face_down + g) * y_down
    return out


def _draw_background(img: np.ndarray, s: Style) -> None:
    cv2.resize(s.background, (IMAGE_WIDTH, IMAGE_HEIGHT), dst=img, interpolation=cv2.INTER_LINEAR)


def _skull(s: Style) -> tuple[float, float, float, float]:
    """Centre and half axes of the hair's outline over the top of the head."""
    return s.face_cx, s.face_y0, s.face_w + s.hair_side, s.face_up + s.hair_top


def _draw_back_hair(pen: _Pen, s: Style, f: _Face) -> None:
    """Hair behind the head: the cap over the skull, and for medium or long hair the falls at
    the sides, down to the chin or past the shoulders."""
    if s.front == "bald":
        return
    cx, cy, ax, ay = _skull(s)
    cap = _circle(56)[28:][::-1] * (ax, ay) + (cx, cy)      # upper half, right to left
    if s.back == "none":
        pen.fill(s.hair, cap)
        return
    fall = s.face_down + (0.0 if s.back == "medium" else 45.0)
    u = _grid(12)
    ys = cy + fall * u
    wave = 3.5 * np.sin(ys / 6 + s.wave_phase) if s.wavy else 0.0
    left = _xy(cx - ax - 10 * u + wave, ys)                 # the falls flare out a little
    right = _xy(cx + ax + 10 * u + wave, ys)
    pen.fill(s.hair, np.concatenate([right[::-1], cap, left]))


def _draw_body(pen: _Pen, s: Style, f: _Face) -> None:
    """Neck, shoulders in clothes, and what is worn at the neck."""
    cx = s.face_cx
    neck_w = s.face_w * (0.58 + 0.08 * s.male)
    bottom = IMAGE_HEIGHT + 25.0                            # past the image edge at any pose
    pen.fill(_shade(s.skin, 0.78), np.array([[cx - neck_w, f.chin - 25], [cx + neck_w, f.chin - 25],
                                             [cx + neck_w * 1.1, bottom], [cx - neck_w * 1.1, bottom]]))
    shoulder_y = f.chin + 18
    pen.fill(s.clothes, _circle(40) * (s.face_w * 2.3, 50) + (cx, shoulder_y + 48))
    if s.necktie is not None:
        pen.fill((232, 236, 238), np.array([[cx - neck_w, shoulder_y - 2], [cx + neck_w, shoulder_y - 2],
                                            [cx + 4, bottom], [cx - 4, bottom]]))
        knot = shoulder_y + 6
        pen.fill(s.necktie, np.array([[cx - 4, shoulder_y], [cx + 4, shoulder_y], [cx + 3, knot],
                                      [cx + 7, bottom], [cx - 7, bottom], [cx - 3, knot]]))
    else:
        # a round neckline: skin shows down into the clothes
        pen.ellipse(_shade(s.skin, 0.8), cx, shoulder_y - 2, neck_w * 1.15, 9)
    if s.necklace is not None:
        pen.line(s.necklace, 1.3, _xy(cx + neck_w * 0.95 * _grid(12, -1.0, 1.0),
                                      shoulder_y - 12 + 14 * _sine_bump(12)))


@lru_cache(maxsize=None)
def _sine_bump(n: int) -> np.ndarray:
    """sin(pi u) for u from 0 to 1: zero at both ends, 1 in the middle."""
    return _frozen(np.sin(math.pi * np.linspace(0, 1, n)))


def _draw_ears(pen: _Pen, s: Style, f: _Face) -> None:
    if s.back != "none":
        return                                              # medium and long hair cover the ears
    y = f.eye_y + 11
    for x, out in ((s.face_cx - s.face_w + 0.5, -1), (s.face_cx + s.face_w - 0.5, 1)):
        pen.ellipse(_shade(s.skin, 0.8), x, y, 6.5, 12.5)
        pen.ellipse(_shade(s.skin, 0.64), x + out * 2.0, y, 3.0, 8.0)
        if s.earrings is not None:
            pen.ellipse(s.earrings, x + out, y + 13.5, 2.2, 2.2)


def _draw_face(pen: _Pen, s: Style, f: _Face) -> None:
    """The face in nested tones, the brightest moved towards the light (the blur softens it)."""
    grows = (0.0, -4.0, -10.0)
    outlines = _face_outlines(s, grows)
    outlines += np.array([s.light * 12, -3.0]) * (np.array(grows) / -10.0)[:, None, None]
    for outline, tone in zip(outlines, (0.85, 0.93, 1.0)):
        pen.fill(_shade(s.skin, tone), outline)
    if s.rosy:
        blush = _circle(20) * (8, 5.5)
        pen.tint((90, 80, 220), 0.3, blush + (f.lx - 3, f.ny + 3), blush + (f.rx + 3, f.ny + 3))


def _beard_shape(s: Style, f: _Face, grow: float) -> np.ndarray:
    """The jaw below the cheekbones, open around the mouth; the lips are drawn over it."""
    start = f.eye_y + 14
    jaw = _face_outlines(s, (grow,))[0, :25]                # right cheek, chin, left cheek
    jaw = jaw[jaw[:, 1] >= start]
    nx, ny = f.nx, f.ny
    cheek = s.face_w * 0.85
    inner = np.array([[s.face_cx - cheek, start + 2], [f.mlx - 7, ny + 2], [f.mlx - 2, ny + 6],
                      [nx - 5, ny + 4], [nx + 5, ny + 4], [f.mrx + 2, ny + 6], [f.mrx + 7, ny + 2],
                      [s.face_cx + cheek, start + 2]])
    return np.concatenate([jaw, inner])


def _draw_beard(pen: _Pen, s: Style, f: _Face) -> None:
    if s.beard == "full":
        pen.fill(_mix(s.hair, s.skin, 0.12), _beard_shape(s, f, 3.0))
    elif s.beard == "stubble":
        pen.tint(_mix(s.hair, (70, 60, 60), 0.5), 0.35, _beard_shape(s, f, 0.0))


def _draw_nose(pen: _Pen, s: Style, f: _Face) -> None:
    """Bridge shadow on the side away from the light, the tip, its underside and nostrils."""
    nx, ny, w = f.nx, f.ny, s.nose_w
    side = 1.0 if s.light < 0 else -1.0
    shadow = _shade(s.skin, 0.8)
    pen.line(shadow, 1.5, np.array([[nx + side * 4.5, f.eye_y + 2],
                                    [nx + side * 5.0, (f.eye_y + ny) / 2],
                                    [nx + side * w * 0.9, ny - 4]]))
    pen.ellipse(shadow, nx, ny + 2.5, w + 1.0, 3.0)
    pen.ellipse(_shade(s.skin, 1.06), nx, ny - 1.0, w * 0.55, 2.6)          # the tip catches light
    pen.line(_shade(s.skin, 0.62), 1.0, np.array([
        [nx - w, ny - 2.5], [nx - w * 0.85, ny + 2.0], [nx - w * 0.4, ny + 2.0], [nx, ny + 3.0],
        [nx + w * 0.4, ny + 2.0], [nx + w * 0.85, ny + 2.0], [nx + w, ny - 2.5]]))
    nostril = _shade(s.skin, 0.4)
    pen.ellipse(nostril, nx - w * 0.45, ny + 1.8, 1.8, 1.0)
    pen.ellipse(nostril, nx + w * 0.45, ny + 1.8, 1.8, 1.0)


@lru_cache(maxsize=None)
def _mouth_profiles(n: int = 17) -> tuple[np.ndarray, ...]:
    """Across the mouth, t from -1 to 1: t, 1 - t^2 (0 at the corners), its 0.6th power (fuller
    lips), the cupid's bow, and t^4 (for the moustache's drooping ends)."""
    t = np.linspace(-1, 1, n)
    bend = 1 - t ** 2
    bow = 0.8 * np.exp(-(t / 0.18) ** 2) * bend
    return tuple(_frozen(a) for a in (t, bend, bend ** 0.6, bow, t ** 4))


def _mouth_points(f: _Face, down: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points across the mouth, t from -1 (left corner) to 1 (right), `down` px below the line
    between the corners; `down` may be a stack of rows."""
    hx, hy = (f.mrx - f.mlx) / 2, (f.mry - f.mly) / 2        # half the mouth, along it
    norm = math.hypot(hx, hy)
    centre = np.array([(f.mlx + f.mrx) / 2, (f.mly + f.mry) / 2])
    return centre + t[:, None] * (hx, hy) + np.asarray(down)[..., None] * (-hy / norm, hx / norm)


def _draw_mouth(pen: _Pen, s: Style, f: _Face) -> None:
    """Lips whose curves all meet at the two landmark corners. A smile bends the mouth down in
    the middle (the corners up) and usually opens on the teeth."""
    t, bend, full, bow, t4 = _mouth_profiles()
    depth = (3.5 if s.smile else 0.6) * bend                 # the middle sits below the corners
    upper_in = depth - 0.3 * s.mouth_gap * bend
    lower_in = depth + 0.7 * s.mouth_gap * bend
    upper_out = upper_in - s.lip_up * full + bow
    lower_out = lower_in + s.lip_down * full
    rows = _mouth_points(f, np.stack([upper_out, lower_out, upper_in, lower_in, depth]), t)

    if s.smile or s.old:                                     # folds from the nose to the corners
        nx, ny = f.nx, f.ny
        folds = [np.array([[nx + sx * (s.nose_w + 2), ny - 2], [cx + sx * 4.5, (ny + cy) / 2 + 1],
                           [cx + sx * 3.5, cy + 3]])
                 for cx, cy, sx in ((f.mlx, f.mly, -1), (f.mrx, f.mry, 1))]
        pen.line(_shade(s.skin, 0.8), 1.0, *folds)
    pen.fill(s.lips, _ring(rows[0], rows[1]))
    if s.mouth_gap > 0:
        pen.fill((45, 35, 75), _ring(rows[2], rows[3]))
        if s.smile:
            inner = slice(2, -2)                             # teeth stop short of the corners
            teeth = np.minimum(upper_in + min(4.5, 0.6 * s.mouth_gap + 1), lower_in)
            pen.fill((215, 225, 230), _ring(rows[2, inner], _mouth_points(f, teeth[inner], t[inner])))
    else:
        pen.line(_shade(s.lips, 0.55), 1.0, rows[4])          # where closed lips meet
    if s.moustache:
        top = np.minimum(upper_out - 1.0, depth - 3.5) - (4.5 + 1.5 * bend)
        pen.fill(s.hair, _ring(*_mouth_points(f, np.stack([upper_out - 0.7 + 2.5 * t4, top]), t * 1.15)))
    if s.beard == "goatee":
        # from under the lower lip down over the chin
        mx, half = (f.mlx + f.mrx) / 2, (f.mrx - f.mlx) / 2
        lip, chin = float(rows[1, len(t) // 2, 1]) + 1.0, f.chin + 1.5
        pen.fill(s.hair, np.array([[mx - 0.6 * half, lip], [mx + 0.6 * half, lip],
                                   [mx + 0.8 * half, chin - 10], [mx + 0.55 * half, chin - 2],
                                   [mx, chin + 1],
                                   [mx - 0.55 * half, chin - 2], [mx - 0.8 * half, chin - 10]]))


@lru_cache(maxsize=None)
def _lid_templates(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid curves of a unit almond eye, left to right, as n x 2."""
    u = np.linspace(0, 1, n)
    x = 2 * u - 1
    bump = np.sin(math.pi * u)
    return (_frozen(np.stack([x, -bump ** 0.8], axis=1)),
            _frozen(np.stack([x, 0.75 * bump ** 0.9], axis=1)))


def _draw_eyes(pen: _Pen, s: Style, f: _Face) -> None:
    """Socket shadow; sclera; iris and pupil centred on the landmark; lids that clip them."""
    socket = _shade(s.skin, 0.86)
    w, h, r = s.eye_w, s.eye_h, s.iris_r
    eyes = ((f.lx, f.ly), (f.rx, f.ry))
    for x, y in eyes:
        pen.ellipse(socket, x, y - 1.5, w + 4, h + 5.5)
        if s.eyeshadow is not None:
            pen.ellipse(s.eyeshadow, x, y - h - 1.5, w + 1.5, 3.5)
    up, low = _lid_templates()
    centres = s.landmarks[:2, None]
    upper = up[None] * (w, h) + centres                     # 2 eyes x 12 points x 2
    lower = low[None] * (w, h) + centres
    pen.fill((222, 228, 232), *_ring(upper, lower))
    for x, y in eyes:
        pen.ellipse(s.iris, x, y, r, r)
        pen.ellipse((12, 10, 10), x, y, 0.5 * r, 0.5 * r)
        # the catch light sits off the pupil, so the landmark itself stays dark
        pen.ellipse((245, 245, 245), x - 0.6 * r, y - 0.5 * r, 0.8, 0.8)
    # lids, in the socket's tone, hide whatever of the iris lies beyond the eye opening
    pen.fill(socket, *_ring(upper, upper - (0, 4.5)))
    pen.fill(socket, *_ring(lower, lower + (0, 3.5)))
    pen.line((25, 22, 28) if not s.male or s.eyeshadow else (45, 45, 55), 1.6, *upper)
    creases = upper - (0, 3.0)
    if s.bags:
        pen.line(_shade(s.skin, 0.7), 1.0, *creases, *(lower + (0, 3.0)))
    else:
        pen.line(_shade(s.skin, 0.7), 1.0, *creases)


@lru_cache(maxsize=None)
def _brow_profile(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Along a brow, u from 0 at the temple to 1 by the nose: u, and the arch (peak at 1/3)."""
    u = np.linspace(0, 1, n)
    return _frozen(u), _frozen(np.sin(math.pi * np.clip(u * 1.2, 0, 1)))


def _draw_brows(pen: _Pen, s: Style, f: _Face) -> None:
    u, arch = _brow_profile()
    half = s.brow_thick * (0.35 + 0.35 * u)                 # thicker towards the nose
    y = -s.brow_gap - s.brow_arch * arch + 1.5 * u
    reach = s.eye_w * 1.35 * (1 - 2.3 * u)                  # from past the outer corner inwards
    top, bottom = y - half, y + half
    brows = []
    for ex, ey, out in ((f.lx, f.ly, -1.0), (f.rx, f.ry, 1.0)):  # out: which way is the temple
        x = ex + out * reach
        brows.append(_ring(_xy(x, ey + top), _xy(x, ey + bottom)))
    pen.fill(s.brow, *brows)


def _hairline_curve(s: Style, x_edge: float, temple_y: float) -> np.ndarray:
    """The lower edge of the front hair, from the left temple to the right."""
    u = _grid(33, -1.0, 1.0)
    part = min(max(s.hair_part, -0.5 * x_edge), 0.5 * x_edge)
    x = s.face_cx + x_edge * u
    # position relative to the hairline's highest point: -1 at the left temple, 0 at the part,
    # 1 at the right temple, so that both ends meet the temples whatever the part
    rel = (x - s.face_cx - part) / np.where(u < part / x_edge, x_edge + part, x_edge - part)
    a = np.abs(rel)
    drop = temple_y - s.hairline
    if s.front == "bangs":
        # a straight fringe, ragged at its lower edge
        y = s.hairline + drop * a ** 5 + 1.8 * _zigzag(len(u))
    elif s.front == "receding":
        # the "M": a widow's peak in the middle, bare corners beside it
        peak, corners = np.exp(-(rel / 0.15) ** 2), np.exp(-((a - 0.6) / 0.2) ** 2)
        y = s.hairline + 6 * peak - 4 * corners + drop * a ** 6
    else:
        y = s.hairline + drop * a ** 3
    return _xy(x, y)


@lru_cache(maxsize=None)
def _zigzag(n: int) -> np.ndarray:
    return _frozen(np.arange(n) % 2.0)


def _draw_front_hair(pen: _Pen, s: Style, f: _Face) -> None:
    """Hair over the forehead down to the hairline (normal, fringe or receding); for a bald head
    only a band of hair above each ear."""
    cx, cy, ax, ay = _skull(s)
    eye_y = f.eye_y
    if s.front == "bald":
        if s.hair_name not in ("blond", "light_blond", "auburn"):
            # a fringe that hugs the head above and behind the ears, thin at the top
            bands = [np.array([[x - o * 1, eye_y - 20], [x + o * 2.5, eye_y - 14],
                               [x + o * 3.5, eye_y + 4], [x - o * 1.5, eye_y + 6],
                               [x - o * 3, eye_y - 8]])
                     for o in (-1, 1) for x in [cx + o * s.face_w]]
            pen.fill(s.hair, *bands)
        return
    temple_y = eye_y - (6 if s.front == "bangs" else 14)
    alpha = math.asin(min(0.95, (cy - temple_y) / ay))
    x_edge = ax * math.cos(alpha)
    t = -alpha - (math.pi - 2 * alpha) * _grid(24)          # over the top, right to left
    arc = _xy(cx + ax * np.cos(t), cy + ay * np.sin(t))
    pen.fill(s.hair, np.concatenate([_hairline_curve(s, x_edge, temple_y), arc]))
    if s.sideburns:
        burns = [np.array([[x, temple_y - 2], [x - o * 6, temple_y], [x - o * 5, eye_y + 20],
                           [x, eye_y + 20]])
                 for o in (-1, 1) for x in [cx + o * (s.face_w - 0.5)]]
        pen.fill(s.hair, *burns)


def _draw_glasses(pen: _Pen, s: Style, f: _Face) -> None:
    """Two rims (filled rings: cheaper than thick antialiased polylines), bridge and arms."""
    if s.glasses is None:
        return
    w, h, t = s.glasses_w, s.glasses_h, 1.8                 # t: rim thickness
    lx, rx = f.lx - 1.5, f.rx + 1.5                          # lenses sit a little outward
    rim = _circle(32, s.glasses_shape)
    outer, inner = rim * (w + t / 2, h + t / 2), rim * (w - t / 2, h - t / 2)
    left, right = (lx, f.ly + 1.5), (rx, f.ry + 1.5)
    pen.fill(s.glasses, outer + left, inner + left, outer + right, inner + right)   # inner = hole
    pen.line(s.glasses, t,
             np.array([[lx + w, f.eye_y - 1], [(lx + rx) / 2, f.eye_y - 3], [rx - w, f.eye_y - 1]]),
             np.array([[lx - w, f.ly - 1.5], [s.face_cx - s.face_w + 1, f.ly - 3]]),      # the arms
             np.array([[rx + w, f.ry - 1.5], [s.face_cx + s.face_w - 1, f.ry - 3]]))


@lru_cache(maxsize=None)
def _noise_tile(level: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor noise at one of _NOISE_LEVELS, in a tile _NOISE_MARGIN rows taller than an image.

    A fixed tile read through a random window looks as random as fresh noise in a picture and
    costs nothing per face. Windows shift only vertically, so each is one contiguous block;
    the positive and negative parts are kept as uint8, so adding noise is two saturating
    OpenCV calls.
    """
    rng = np.random.default_rng(20240607 + level)
    n = rng.standard_normal((IMAGE_HEIGHT + _NOISE_MARGIN, IMAGE_WIDTH, 3))
    n = np.rint(n * _NOISE_LEVELS[level])
    return np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)


def _camera(img: np.ndarray, s: Style) -> np.ndarray:
    """Lens blur and sensor noise, so the JPEG looks photographed rather than flat."""
    if s.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), s.blur)
    else:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    plus, minus = _noise_tile(s.noise)
    window = slice(s.noise_at, s.noise_at + IMAGE_HEIGHT)
    cv2.add(img, plus[window], dst=img)
    cv2.subtract(img, minus[window], dst=img)
    return img


_PARTS = (_draw_back_hair, _draw_body, _draw_ears, _draw_face, _draw_beard, _draw_nose,
          _draw_mouth, _draw_eyes, _draw_brows, _draw_front_hair, _draw_glasses)


def _render(s: Style) -> tuple[np.ndarray, np.ndarray]:
    """The image and the landmarks mapped through the same pose as every shape."""
    img = np.empty((IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
    _draw_background(img, s)
    pen, face = _Pen(s.pose), _Face(s)
    # back to front: what is drawn later covers what was drawn before
    for part in _PARTS:
        part(pen, s, face)
    pen.draw(img)
    landmarks = s.landmarks @ s.pose[:, :2].T + s.pose[:, 2]
    return _camera(img, s), landmarks


def draw_face(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One face: BGR uint8 image 218x178x3, landmarks float64 5x2 (x, y) in CelebA order (left
    eye, right eye, nose, left mouth corner, right mouth corner; 'left' = image left, as in
    CelebA's lefteye_x columns), attributes int8 (40,) in {-1, 1} in ATTRIBUTES order."""
    style = _sample_style(rng)
    image, landmarks = _render(style)
    return image, landmarks, _attributes(style)


# --------------------------------------------------------------------------- writing the dataset

def split_of(count: int) -> np.ndarray:
    """CelebA-style partition by contiguous index ranges: train first, then val, then test."""
    n_train = int(round(count * SPLIT_FRACTIONS[0]))
    n_val = int(round(count * SPLIT_FRACTIONS[1]))
    splits = np.full(count, 2, dtype=np.int8)
    splits[:n_train] = 0
    splits[n_train:n_train + n_val] = 1
    return splits


def _draw_chunk(seed: int, start: int, stop: int, quality: int
                ) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Faces start..stop-1 as JPEG bytes, with their landmarks and attributes."""
    jpegs, landmarks, attributes = [], [], []
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    for i in range(start, stop):
        image, lm, attr = draw_face(np.random.default_rng([seed, i]))
        ok, buf = cv2.imencode(".jpg", image, params)
        if not ok:
            raise RuntimeError(f"OpenCV could not encode synthetic face {i} as JPEG")
        jpegs.append(buf.tobytes())
        landmarks.append(lm)
        attributes.append(attr)
    return jpegs, np.array(landmarks), np.array(attributes)


def _init_worker() -> None:
    # one OpenCV thread per process: the processes already use every core
    cv2.setNumThreads(1)


def _chunks(count: int) -> list[tuple[int, int]]:
    return [(a, min(a + CHUNK, count)) for a in range(0, count, CHUNK)]


def _drawn_in_order(seed: int, count: int, workers: int, quality: int
                    ) -> Iterator[tuple[list[bytes], np.ndarray, np.ndarray]]:
    """Chunks of drawn faces, in index order, from `workers` processes (1: this process).

    At most a few chunks per worker are in flight, so memory stays bounded however many faces
    are asked for.
    """
    if workers == 1:
        for a, b in _chunks(count):
            yield _draw_chunk(seed, a, b, quality)
        return
    from concurrent.futures import ProcessPoolExecutor

    # 'forkserver' (or 'spawn'), never 'fork': a forked pool hangs after OpenCV used threads.
    # The fork server imports this module once, so each worker starts as a cheap fork of it.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)
    try:
        pending: deque = deque()
        todo = iter(_chunks(count))
        for a, b in todo:
            pending.append(pool.submit(_draw_chunk, seed, a, b, quality))
            if len(pending) >= 3 * workers:
                break
        while pending:
            result = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_draw_chunk, seed, *nxt, quality))
            yield result
    finally:
        # on an error or interrupt, drop the queued chunks instead of drawing them for nothing
        pool.shutdown(wait=True, cancel_futures=True)


def _zip_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED        # JPEG does not compress further
    info.create_system = 3                         # Unix, on every platform: identical bytes
    info.external_attr = (0o40755 << 16 | 0x10) if name.endswith("/") else 0o100644 << 16
    return info


def write_synthfaces(out_dir: str | Path, count: int, seed: int, workers: int = 0,
                     quality: int = 90) -> dict:
    """Write img_align_celeba.zip + list_landmarks_align_celeba.txt + list_attr_celeba.txt +
    list_eval_partition.txt into out_dir. Returns a summary dict (count, per-split counts,
    seconds, images_per_s). workers=0 means one process per core.

    The summary's keys: count, train, val, test (images per split), workers (processes used),
    seconds, images_per_s. Face i comes from np.random.default_rng([seed, i]), so the files are
    byte-identical for the same seed whatever `workers` is. The folder appears whole or not at
    all: it is written under a temporary name next to out_dir and renamed into place.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if workers < 0:
        raise ValueError(f"workers must be 0 (one per core) or more, got {workers}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    workers = workers or len(os.sched_getaffinity(0))
    workers = max(1, min(workers, len(_chunks(count))))
    log.info("synthfaces: drawing %d faces (seed %d) with %d process(es)", count, seed, workers)

    started = time.perf_counter()
    names = [image_name(i) for i in range(count)]
    landmarks, attributes = [], []
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        with zipfile.ZipFile(tmp / IMAGE_ZIP, "w", zipfile.ZIP_STORED) as zf, \
                progress(total=count, desc="synthfaces", unit="img") as bar:
            # CelebA's zip lists its folder first, then the images
            zf.writestr(_zip_member(IMAGE_DIR + "/"), b"")
            index = 0
            for jpegs, lm, attr in _drawn_in_order(seed, count, workers, quality):
                for data in jpegs:
                    zf.writestr(_zip_member(f"{IMAGE_DIR}/{names[index]}"), data)
                    index += 1
                landmarks.append(lm)
                attributes.append(attr)
                bar.update(len(jpegs))
        splits = split_of(count)
        write_landmarks(tmp / LANDMARK_FILE, names, np.concatenate(landmarks))
        write_attributes(tmp / ATTR_FILE, names, np.concatenate(attributes))
        write_partition(tmp / PARTITION_FILE, names, splits)
    seconds = time.perf_counter() - started
    summary = {
        "count": count,
        "train": int((splits == 0).sum()), "val": int((splits == 1).sum()),
        "test": int((splits == 2).sum()),
        "workers": workers,
        "seconds": round(seconds, 3),
        "images_per_s": round(count / seconds, 1),
    }
    log.info("synthfaces: %s", summary)
    return summary
