"""synthfaces: the default offline dataset, faces drawn with OpenCV in CelebA's *aligned* layout.

Each face is drawn from its own random generator, `np.random.default_rng([seed, index])`, so
image i is the same whatever the number of worker processes. The drawing has three steps:

1. `_sample_style(rng)` makes every random choice up front (geometry, colours, hair, accessories,
   pose, noise) into a plain `Style`;
2. `_render(style)` draws it, deterministically;
3. `_attributes(style)` derives CelebA's 40 attributes from the same `Style`,

so the attributes say what was drawn and nothing else. The face is drawn in a *canonical* frame
whose landmarks sit near CelebA's mean aligned landmarks; every shape then passes through one
random similarity (the pose jitter) on its way to the image, and so do the landmarks. The
landmarks are the points the drawing is built from (pupil centres, nose tip, mouth corners), so
they are true to the image by construction.

The output is CelebA's published layout (see `celeba_format`): `img_align_celeba.zip` of 178x218
JPEGs and the three annotation files, so the rest of the pipeline runs the same code as on CelebA.
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
SPLIT_FRACTIONS = (0.8, 0.1)      # train, val; the rest is test (CelebA: 80.3 / 9.8 / 9.9 %)
CHUNK = 64                        # images per task sent to a worker
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: same seed, byte-identical zip
_SHIFT = 4                        # fixed-point bits for OpenCV drawing: 1/16 px positions
_ONE = 1 << _SHIFT

# Colours are BGR, as OpenCV draws them.
# Skin tones from light to dark; a face interpolates between neighbours.
_SKIN = np.array([[215, 228, 250], [180, 200, 240], [150, 180, 226], [115, 155, 205],
                  [80, 120, 170], [55, 85, 130], [40, 60, 95]], dtype=np.float64)
_PALE_BELOW = 0.12                # skin position (0 lightest .. 1 darkest) below which Pale_Skin
# name -> (BGR, CelebA attribute or None)
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
_GLASSES = ((20, 20, 20), (30, 45, 70), (150, 150, 150), (60, 150, 190), (90, 40, 40))
_LIPSTICK = ((45, 30, 185), (95, 70, 200), (60, 40, 140), (110, 90, 215))


@dataclass(frozen=True)
class Style:
    """Every random choice for one face; `_render` and `_attributes` read only this."""
    # who
    male: bool
    old: bool
    skin_pos: float               # 0 lightest .. 1 darkest
    skin: tuple[float, float, float]
    # canonical geometry (before the pose jitter)
    landmarks: np.ndarray         # 5 x 2, canonical frame
    face_cx: float
    face_y0: float                # widest line of the face, between the upper and lower halves
    face_w: float                 # half width
    face_up: float                # y0 - top of the forehead
    face_down: float              # chin - y0
    jaw: float                    # superellipse exponent of the lower face: <2 pointed, >2 square
    # eyes and brows
    eye_w: float
    eye_h: float
    iris_r: float
    iris: tuple[int, int, int]
    brow_thick: float
    brow_arch: float
    brow_gap: float
    brow_colour: tuple[float, float, float]
    # nose and mouth
    nose_w: float
    smile: bool
    mouth_gap: float              # 0 closed; a few px parted; more for an open smile
    lip_up: float
    lip_down: float
    lip_colour: tuple[float, float, float]
    lipstick: bool
    # hair
    hair_name: str
    hair: tuple[float, float, float]
    front: str                    # normal | bangs | receding | bald
    back: str                     # none | medium | long
    hairline: float               # y of the top of the hairline (canonical)
    hair_top: float               # how far hair rises above the forehead
    hair_side: float              # how far hair stands out at the sides
    hair_part: float              # horizontal shift of the hairline's highest point
    wavy: bool
    wave_phase: float
    # facial hair and accessories
    beard: str                    # none | full | goatee | stubble
    moustache: bool
    sideburns: bool
    glasses: tuple[int, int, int] | None
    glasses_w: float
    glasses_h: float
    glasses_round: float          # superellipse exponent of the rims: 2 oval .. 4 rectangular
    earrings: tuple[int, int, int] | None
    necklace: tuple[int, int, int] | None
    necktie: tuple[int, int, int] | None
    clothes: tuple[float, float, float]
    rosy: bool
    makeup: tuple[float, float, float] | None
    bags: bool
    # scene and camera
    background: np.ndarray        # 2 x 2 x 3 corner colours, bilinearly interpolated
    light: float                  # horizontal light gradient, fraction of brightness
    pose: np.ndarray              # 2 x 3 similarity from canonical to image coordinates
    blur: float
    noise: float
    noise_seed: int


# --------------------------------------------------------------------------- sampling the style

def _mix(a, b, t: float) -> tuple[float, float, float]:
    return tuple(float(x) for x in (1 - t) * np.asarray(a, float) + t * np.asarray(b, float))


def _shade(c, f: float) -> tuple[float, float, float]:
    return tuple(float(min(255.0, x * f)) for x in c)


def _skin(pos: float) -> tuple[float, float, float]:
    x = pos * (len(_SKIN) - 1)
    i = min(int(x), len(_SKIN) - 2)
    return _mix(_SKIN[i], _SKIN[i + 1], x - i)


def _pick(rng: np.random.Generator, options: dict[str, float]) -> str:
    keys = list(options)
    p = np.array([options[k] for k in keys], dtype=np.float64)
    return keys[rng.choice(len(keys), p=p / p.sum())]


def _landmarks(rng: np.random.Generator, smile: bool) -> np.ndarray:
    """Canonical landmarks: CelebA's mean with a small natural shape variation.

    The variation is kept to ~1 px (2-3 % of the 39 px eye distance) because the aligner maps
    landmarks with a least-squares similarity and expects the residual to stay small; the big
    pose changes come from the similarity jitter applied afterwards.
    """
    eye_half = 19.5 * (1 + rng.uniform(-0.025, 0.025))
    eye_y = 111.0 + rng.uniform(-0.5, 0.5)
    cx = 88.5
    nose = (cx + rng.uniform(-0.8, 0.8), 136.0 + rng.uniform(-1.0, 1.0))
    # a smile pulls the mouth corners up and out a little
    mouth_half = 16.5 + rng.uniform(-0.8, 0.8) + (0.6 if smile else 0.0)
    mouth_y = 152.0 + rng.uniform(-1.0, 1.0) - (0.8 if smile else 0.0)
    mouth_cx = cx + rng.uniform(-0.5, 0.5)
    pts = np.array([[cx - eye_half, eye_y], [cx + eye_half, eye_y], nose,
                    [mouth_cx - mouth_half, mouth_y], [mouth_cx + mouth_half, mouth_y]])
    return pts + rng.uniform(-0.3, 0.3, size=(5, 2))


def _pose(rng: np.random.Generator) -> np.ndarray:
    """A small similarity about the landmarks' centre: rotation, scale and shift."""
    angle = math.radians(float(np.clip(rng.normal(0, 3.5), -8, 8)))
    scale = 1 + rng.uniform(-0.06, 0.06)
    shift = rng.uniform(-3, 3, size=2)
    centre = MEAN_LANDMARKS.mean(axis=0)
    rot = scale * np.array([[math.cos(angle), -math.sin(angle)],
                            [math.sin(angle), math.cos(angle)]])
    return np.hstack([rot, (centre + shift - rot @ centre)[:, None]])


def _background(rng: np.random.Generator) -> np.ndarray:
    """Corner colours of a soft gradient: a random hue, mostly muted, sometimes a flat colour."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 160), rng.uniform(50, 240)]]],
                   dtype=np.float32)
    base = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
    if rng.random() < 0.2:
        return np.broadcast_to(base, (2, 2, 3)).copy()
    factors = rng.uniform(0.55, 1.25, size=(2, 2, 1))
    return np.clip(base * factors, 0, 255)


def _hair(rng: np.random.Generator, male: bool, old: bool) -> tuple[str, str, str]:
    """(colour name, front style, back length), with the usual correlations to sex and age."""
    if male:
        front = _pick(rng, {"normal": 0.62, "bangs": 0.1, "receding": 0.14 + 0.2 * old,
                            "bald": 0.08 + 0.2 * old})
        back = "none" if front == "bald" else _pick(rng, {"none": 0.8, "medium": 0.13, "long": 0.07})
    else:
        front = _pick(rng, {"normal": 0.68, "bangs": 0.3, "receding": 0.02 + 0.06 * old})
        back = _pick(rng, {"none": 0.1, "medium": 0.35, "long": 0.55})
    if old and rng.random() < 0.7:
        colour = "gray" if rng.random() < 0.6 else "white"
    else:
        colour = _pick(rng, {"black": 0.3, "dark_brown": 0.17, "brown": 0.16, "auburn": 0.07,
                             "blond": 0.12 + 0.08 * (not male), "light_blond": 0.05, "gray": 0.03})
    return colour, front, back


def _hairline(rng: np.random.Generator, front: str, eye_y: float) -> float:
    if front == "bangs":
        return eye_y - rng.uniform(17, 23)       # the fringe stops just above the brows
    if front == "receding":
        return eye_y - rng.uniform(46, 52)
    return eye_y - rng.uniform(31, 40)


def _sample_style(rng: np.random.Generator) -> Style:
    male = bool(rng.random() < 0.45)
    old = bool(rng.random() < 0.22)
    smile = bool(rng.random() < 0.48)
    skin_pos = float(rng.beta(1.3, 1.8))
    skin = _skin(skin_pos)
    lm = _landmarks(rng, smile)
    eye_y = float(lm[:2, 1].mean())
    mouth_y = float(lm[3:, 1].mean())
    top = eye_y - rng.uniform(47, 56)
    chin = mouth_y + rng.uniform(25, 33) + 3 * male
    y0 = eye_y + rng.uniform(4, 10)

    hair_name, front, back = _hair(rng, male, old)
    hair = _HAIR[hair_name][0]
    # brows are darker than light hair; gray-haired people keep somewhat darker brows
    brow = _mix(hair, (30, 40, 55), 0.45 if hair_name in ("blond", "light_blond", "white") else 0.15)

    beard = "none"
    moustache = False
    if male:
        beard = _pick(rng, {"none": 0.55, "full": 0.17, "goatee": 0.12, "stubble": 0.16})
        moustache = beard in ("full", "goatee") or rng.random() < 0.12
    lipstick = (not male) and rng.random() < 0.55
    makeup = None
    if lipstick and rng.random() < 0.5:
        makeup = _mix(skin, _IRIS[rng.integers(len(_IRIS))], 0.45)
    natural_lips = _mix(_shade(skin, 0.82), (70, 60, 170), 0.28)
    lip_colour = _mix(natural_lips, _LIPSTICK[rng.integers(len(_LIPSTICK))], 0.8) if lipstick \
        else natural_lips

    if smile:
        gap = rng.uniform(2.5, 8.0) if rng.random() < 0.8 else 0.0
    else:
        gap = rng.uniform(1.2, 2.6) if rng.random() < 0.2 else 0.0

    glasses = _GLASSES[rng.integers(len(_GLASSES))] if rng.random() < 0.22 + 0.2 * old else None
    ears_visible = back == "none"
    earrings = (((40, 180, 225), (200, 200, 205))[rng.integers(2)]
                if ears_visible and not male and rng.random() < 0.6 else None)
    necklace = (((40, 170, 215), (190, 190, 195))[rng.integers(2)]
                if not male and rng.random() < 0.25 else None)
    clothes = tuple(float(c) for c in rng.integers(10, 230, size=3))
    necktie = None
    if male and rng.random() < 0.25:
        necktie = tuple(int(c) for c in rng.integers(20, 200, size=3))
        clothes = _shade(clothes, 0.35)           # a dark suit around a white shirt

    return Style(
        male=male, old=old, skin_pos=skin_pos, skin=skin, landmarks=lm,
        face_cx=88.5 + rng.uniform(-1, 1), face_y0=y0,
        face_w=rng.uniform(41, 50) + 1.5 * male, face_up=y0 - top, face_down=chin - y0,
        jaw=rng.uniform(1.7, 2.3) + 0.4 * male,
        eye_w=rng.uniform(7.5, 9.0),
        eye_h=rng.uniform(2.0, 2.7) if rng.random() < 0.15 else rng.uniform(3.3, 4.6),
        iris_r=rng.uniform(3.6, 4.6), iris=_IRIS[rng.integers(len(_IRIS))],
        brow_thick=rng.uniform(2.0, 3.2) + (rng.uniform(1.0, 2.0) if rng.random() < 0.25 else 0),
        brow_arch=rng.uniform(0.5, 4.0), brow_gap=rng.uniform(9.5, 13.0), brow_colour=brow,
        nose_w=rng.uniform(7.5, 9.0) if rng.random() < 0.2 else rng.uniform(5.0, 7.0),
        smile=smile, mouth_gap=float(gap),
        lip_up=rng.uniform(2.0, 3.5) + 0.6 * (not male), lip_down=rng.uniform(3.0, 5.5),
        lip_colour=lip_colour, lipstick=lipstick,
        hair_name=hair_name, hair=hair, front=front, back=back,
        hairline=_hairline(rng, front, eye_y), hair_top=rng.uniform(4, 16),
        hair_side=rng.uniform(2, 8) + 3 * (back != "none"), hair_part=rng.uniform(-12, 12),
        wavy=bool(rng.random() < 0.35), wave_phase=rng.uniform(0, 2 * math.pi),
        beard=beard, moustache=moustache, sideburns=male and front != "bald" and rng.random() < 0.3,
        glasses=glasses, glasses_w=rng.uniform(11, 14), glasses_h=rng.uniform(8, 11),
        glasses_round=rng.uniform(2, 4.5),
        earrings=earrings, necklace=necklace, necktie=necktie, clothes=clothes,
        rosy=bool(rng.random() < 0.12 + 0.2 * (not male)), makeup=makeup,
        bags=old and rng.random() < 0.6,
        background=_background(rng), light=rng.uniform(-0.22, 0.22), pose=_pose(rng),
        blur=rng.uniform(1.6, 2.4) if rng.random() < 0.05 else rng.uniform(0.45, 0.85),
        noise=rng.uniform(1.0, 3.5), noise_seed=int(rng.integers(1 << 30)),
    )


# --------------------------------------------------------------------------- attributes

def _attributes(s: Style) -> np.ndarray:
    """CelebA's 40 attributes, +1 exactly where the drawing shows them; all others -1."""
    has_hair = s.front != "bald"
    shown = {
        "5_o_Clock_Shadow": s.beard == "stubble",
        "Arched_Eyebrows": s.brow_arch > 2.8,
        "Bags_Under_Eyes": s.bags,
        "Bald": not has_hair,
        "Bangs": s.front == "bangs",
        "Big_Lips": s.lip_up + s.lip_down > 8.0,
        "Big_Nose": s.nose_w > 7.25,
        "Blurry": s.blur > 1.5,
        "Bushy_Eyebrows": s.brow_thick > 3.6,
        "Chubby": s.face_w > 49,
        "Eyeglasses": s.glasses is not None,
        "Goatee": s.beard == "goatee",
        "Heavy_Makeup": s.makeup is not None,
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
    unknown = set(shown) - set(ATTRIBUTES)
    assert not unknown, f"not CelebA attributes: {unknown}"   # a typo here is a bug, not user error
    return np.array([1 if shown.get(a, False) else -1 for a in ATTRIBUTES], dtype=np.int8)


# --------------------------------------------------------------------------- drawing

@lru_cache(maxsize=4)
def _unit_circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.cos(t), np.sin(t)


def _ellipse(cx: float, cy: float, ax: float, ay: float, n: int = 40, power: float = 2.0) -> np.ndarray:
    """Points of an ellipse (power 2) or a superellipse (power > 2 is squarer)."""
    c, s = _unit_circle(n)
    if power != 2.0:
        c = np.sign(c) * np.abs(c) ** (2 / power)
        s = np.sign(s) * np.abs(s) ** (2 / power)
    return np.stack([cx + ax * c, cy + ay * s], axis=1)


def _curve(x0: float, x1: float, y, n: int = 16) -> np.ndarray:
    """Points (x, y(u)) for x from x0 to x1, u the position along it in [0, 1]."""
    u = np.linspace(0, 1, n)
    return np.stack([x0 + (x1 - x0) * u, y(u)], axis=1)


class _Pen:
    """Draws canonical-frame shapes through the pose similarity, antialiased, at 1/16 px."""

    def __init__(self, img: np.ndarray, pose: np.ndarray):
        self.img = img
        self.pose = pose
        self.scale = float(np.hypot(*pose[:, 0]))

    def _fixed(self, pts: np.ndarray) -> np.ndarray:
        xy = pts @ self.pose[:, :2].T + self.pose[:, 2]
        return np.rint(xy * _ONE).astype(np.int32)

    def fill(self, pts: np.ndarray, colour) -> None:
        cv2.fillPoly(self.img, [self._fixed(pts)], colour, cv2.LINE_AA, _SHIFT)

    def line(self, pts: np.ndarray, colour, thickness: float, closed: bool = False) -> None:
        width = max(1, int(round(thickness * self.scale)))
        cv2.polylines(self.img, [self._fixed(pts)], closed, colour, width, cv2.LINE_AA, _SHIFT)

    def circle(self, x: float, y: float, r: float, colour) -> None:
        centre = self._fixed(np.array([[x, y]]))[0]
        cv2.circle(self.img, (int(centre[0]), int(centre[1])), int(round(r * self.scale * _ONE)),
                   colour, -1, cv2.LINE_AA, _SHIFT)


def _face_outline(s: Style, grow: float = 0.0, n: int = 64) -> np.ndarray:
    """Forehead as a half ellipse, lower face as a half superellipse (s.jaw sets the chin)."""
    c, sn = _unit_circle(n)
    w = s.face_w + grow
    upper = sn < 0
    x = np.where(upper, c, np.sign(c) * np.abs(c) ** (2 / s.jaw))
    y = np.where(upper, (s.face_up + grow) * sn, (s.face_down + grow) * np.abs(sn) ** (2 / s.jaw))
    return np.stack([s.face_cx + w * x, s.face_y0 + y], axis=1)


def _draw_background(img: np.ndarray, s: Style) -> None:
    corners = s.background.astype(np.uint8)
    img[:] = cv2.resize(corners, (IMAGE_WIDTH, IMAGE_HEIGHT), interpolation=cv2.INTER_LINEAR)


def _skull(s: Style) -> tuple[float, float, float, float]:
    """Centre and half axes of the hair's outline around the top of the head."""
    return s.face_cx, s.face_y0, s.face_w + s.hair_side, s.face_up + s.hair_top


def _draw_back_hair(pen: _Pen, s: Style) -> None:
    """Hair behind the head: the skull's cap, and for medium/long hair the falls at the sides."""
    if s.front == "bald":
        return
    cx, cy, ax, ay = _skull(s)
    t = np.linspace(0, -math.pi, 40)                  # over the top, right to left
    cap = np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)
    if s.back == "none":
        pen.fill(cap, s.hair)
        return
    bottom = cy + (s.face_down + rng_free_len(s))
    ys = np.linspace(cy, bottom, 14)
    flare = (ys - cy) / max(1.0, bottom - cy) * 10
    wave = 3 * np.sin(ys / 9 + s.wave_phase) if s.wavy else 0 * ys
    left = np.stack([cx - ax - flare + wave, ys], axis=1)
    right = np.stack([cx + ax + flare + wave, ys], axis=1)[::-1]
    pen.fill(np.concatenate([right, cap, left]), s.hair)


def rng_free_len(s: Style) -> float:
    """How far medium/long hair falls below the widest line of the face."""
    return 0.0 if s.back == "medium" else 45.0


def _draw_body(pen: _Pen, s: Style) -> None:
    """Neck, shoulders in clothes, and what is worn at the neck."""
    cx = s.face_cx
    chin = s.face_y0 + s.face_down
    neck_w = s.face_w * (0.58 + 0.08 * s.male)
    neck = np.array([[cx - neck_w, chin - 25], [cx + neck_w, chin - 25],
                     [cx + neck_w * 1.1, IMAGE_HEIGHT + 20], [cx - neck_w * 1.1, IMAGE_HEIGHT + 20]])
    pen.fill(neck, _shade(s.skin, 0.78))
    shoulder_y = chin + 18
    pen.fill(_ellipse(cx, shoulder_y + 48, s.face_w * 2.3, 50, n=48), s.clothes)
    if s.necktie is not None:
        shirt = np.array([[cx - neck_w, shoulder_y - 2], [cx + neck_w, shoulder_y - 2],
                          [cx + 4, IMAGE_HEIGHT + 20], [cx - 4, IMAGE_HEIGHT + 20]])
        pen.fill(shirt, (235, 238, 240))
        pen.fill(np.array([[cx - 4, shoulder_y], [cx + 4, shoulder_y], [cx + 3, shoulder_y + 6],
                           [cx - 3, shoulder_y + 6]]), s.necktie)
        pen.fill(np.array([[cx - 3, shoulder_y + 6], [cx + 3, shoulder_y + 6],
                           [cx + 7, IMAGE_HEIGHT + 20], [cx - 7, IMAGE_HEIGHT + 20]]), s.necktie)
    else:
        # a round neckline: skin shows down into the clothes
        pen.fill(_ellipse(cx, shoulder_y - 2, neck_w * 1.15, 9, n=32), _shade(s.skin, 0.8))
    if s.necklace is not None:
        pen.line(_curve(cx - neck_w * 0.95, cx + neck_w * 0.95,
                        lambda u: shoulder_y - 12 + 14 * np.sin(math.pi * u)), s.necklace, 1.3)


def _draw_ears(pen: _Pen, s: Style) -> None:
    if s.back != "none":
        return                                        # medium and long hair cover the ears
    y = s.landmarks[:2, 1].mean() + 11
    for side in (-1, 1):
        x = s.face_cx + side * (s.face_w - 1.5)
        pen.fill(_ellipse(x, y, 6.5, 12.5), _shade(s.skin, 0.88))
        pen.fill(_ellipse(x + side * 1.5, y, 3.0, 8.0), _shade(s.skin, 0.72))
        if s.earrings is not None:
            pen.circle(x + side * 1.0, y + 13.5, 2.2, s.earrings)


def _draw_face(pen: _Pen, s: Style) -> None:
    """The face in three nested tones, lit from the side the light comes from (blur softens it)."""
    pen.fill(_face_outline(s), _shade(s.skin, 0.86))
    lit = np.array([-s.light * 14, -4.0])                # the bright part moves towards the light
    for grow, tone in ((-4.5, 0.93), (-10.0, 1.0)):
        pen.fill(_face_outline(s, grow) + lit * (grow / -10.0), _shade(s.skin, tone))
    if s.rosy:
        blush = _mix(s.skin, (90, 80, 215), 0.22)
        for eye in s.landmarks[:2]:
            pen.fill(_ellipse(eye[0] + np.sign(eye[0] - s.face_cx) * 3, s.landmarks[2, 1] + 3, 8, 5.5),
                     blush)


def _draw_facial_hair(pen: _Pen, s: Style) -> None:
    """Full beard and stubble cover the jaw; drawn before the mouth, which sits on top."""
    if s.beard not in ("full", "stubble"):
        return
    nose_y = s.landmarks[2, 1]
    outline = _face_outline(s, grow=3.0 if s.beard == "full" else 0.0)
    jaw = outline[outline[:, 1] > nose_y - 2]
    jaw = jaw[np.argsort(np.arctan2(jaw[:, 1] - s.face_y0, jaw[:, 0] - s.face_cx))]
    nx = s.landmarks[2, 0]
    ml, mr = s.landmarks[3], s.landmarks[4]
    inner = np.array([[mr[0] + 9, nose_y + 2], [nx + 4, nose_y + 5], [nx - 4, nose_y + 5],
                      [ml[0] - 9, nose_y + 2]])
    # jaw runs from the right cheek under the chin to the left; the inner edge closes it
    colour = s.hair if s.beard == "full" else _mix(s.skin, (60, 60, 60), 0.28)
    pen.fill(np.concatenate([jaw, inner[::-1][::-1]]), colour)


def _eye_lids(e: np.ndarray, w: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower lid curves of an almond eye, left to right."""
    upper = _curve(e[0] - w, e[0] + w, lambda u: e[1] - h * np.sin(math.pi * u) ** 0.8)
    lower = _curve(e[0] - w, e[0] + w, lambda u: e[1] + 0.75 * h * np.sin(math.pi * u) ** 0.9)
    return upper, lower


def _draw_eyes(pen: _Pen, s: Style) -> None:
    """Socket shadow, sclera, iris and pupil centred on the landmark, then lids that clip them."""
    socket = _shade(s.skin, 0.86)
    for e in s.landmarks[:2]:
        pen.fill(_ellipse(e[0], e[1] - 1.5, s.eye_w + 4, s.eye_h + 5.5), socket)
        if s.makeup is not None:
            pen.fill(_ellipse(e[0], e[1] - s.eye_h - 1.5, s.eye_w + 1.5, 3.5), s.makeup)
        upper, lower = _eye_lids(e, s.eye_w, s.eye_h)
        pen.fill(np.concatenate([upper, lower[::-1]]), (222, 228, 232))
        pen.circle(e[0], e[1], s.iris_r, s.iris)
        pen.circle(e[0], e[1], s.iris_r * 0.45, (12, 10, 10))
        pen.circle(e[0] - s.iris_r * 0.35, e[1] - s.iris_r * 0.35, 0.8, (245, 245, 245))
        # lids, in the socket's tone, hide the iris beyond the eye opening
        lid = upper - [0, 0] + 0
        pen.fill(np.concatenate([lid, (lid - [0, 4.5])[::-1]]), socket)
        pen.fill(np.concatenate([lower, (lower + [0, 3.5])[::-1]]), socket)
        pen.line(upper, (25, 22, 28) if s.makeup or not s.male else (45, 45, 55), 1.6)
        pen.line(upper - [0, 3.0], _shade(s.skin, 0.7), 1.0)          # the crease
        if s.bags:
            pen.line(_curve(e[0] - s.eye_w, e[0] + s.eye_w,
                            lambda u: e[1] + s.eye_h + 3 + 1.5 * np.sin(math.pi * u)),
                     _shade(s.skin, 0.72), 1.0)


def _draw_brows(pen: _Pen, s: Style) -> None:
    for e in s.landmarks[:2]:
        out = -1.0 if e[0] < s.face_cx else 1.0    # which way is the temple
        w = s.eye_w * 1.35
        u = np.linspace(0, 1, 14)                    # 0 at the temple, 1 next to the nose
        x = e[0] + out * w - out * 2.3 * w * u
        y = e[1] - s.brow_gap - s.brow_arch * np.sin(math.pi * np.clip(u * 1.2, 0, 1)) + 1.5 * u
        half = s.brow_thick * (0.35 + 0.35 * u)
        pen.fill(np.concatenate([np.stack([x, y - half], 1), np.stack([x, y + half], 1)[::-1]]),
                 s.brow_colour)


def _draw_nose(pen: _Pen, s: Style) -> None:
    """Bridge shadow on the side away from the light, then the tip's underside and nostrils."""
    nx, ny = s.landmarks[2]
    w = s.nose_w
    dark, darker = _shade(s.skin, 0.8), _shade(s.skin, 0.62)
    side = 1.0 if s.light < 0 else -1.0
    eye_y = s.landmarks[:2, 1].mean()
    pen.line(_curve(nx + side * 4.5, nx + side * w * 0.9,
                    lambda u: eye_y + 2 + (ny - 4 - eye_y - 2) * u, n=6), dark, 1.5)
    pen.fill(_ellipse(nx, ny + 2.5, w + 1.0, 3.0), dark)
    pen.fill(_ellipse(nx, ny - 1.0, w * 0.55, 2.6), _shade(s.skin, 1.06))       # tip highlight
    pen.line(np.array([[nx - w, ny - 2.5], [nx - w * 0.85, ny + 2.0], [nx - w * 0.4, ny + 2.0],
                       [nx, ny + 3.0], [nx + w * 0.4, ny + 2.0], [nx + w * 0.85, ny + 2.0],
                       [nx + w, ny - 2.5]]), darker, 1.0)
    for sx in (-1, 1):
        pen.fill(_ellipse(nx + sx * w * 0.45, ny + 1.8, 1.8, 1.0, n=16), _shade(s.skin, 0.4))


def _mouth_frame(s: Style) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The mouth's centre, unit vectors along it and down from it, and its half width."""
    ml, mr = s.landmarks[3], s.landmarks[4]
    along = (mr - ml) / np.linalg.norm(mr - ml)
    down = np.array([-along[1], along[0]])
    return (ml + mr) / 2, along, down, float(np.linalg.norm(mr - ml) / 2)


def _mouth_points(s: Style, offset: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
    """Points across the mouth (t from -1 at the left corner to 1 at the right), `offset` down."""
    centre, along, down, half = _mouth_frame(s)
    if t is None:
        t = np.linspace(-1, 1, len(offset))
    return centre + np.outer(t * half, along) + np.outer(offset, down)


def _draw_mouth(pen: _Pen, s: Style) -> None:
    """Lips whose curves all meet at the two landmark corners; a smile bends the line upward
    at the corners and may open on teeth."""
    t = np.linspace(-1, 1, 21)
    bend = 1 - t ** 2
    depth = (3.5 if s.smile else 0.6) * bend           # how far the middle sits below the corners
    bow = 0.8 * np.exp(-(t / 0.18) ** 2)               # cupid's bow in the upper lip
    upper_in = depth - 0.3 * s.mouth_gap * bend
    lower_in = depth + 0.7 * s.mouth_gap * bend
    upper_out = upper_in - s.lip_up * bend ** 0.6 + bow * bend
    lower_out = lower_in + s.lip_down * bend ** 0.6

    if s.smile or s.old:                               # folds from the nose to the corners
        nx, ny = s.landmarks[2]
        for corner, sx in ((s.landmarks[3], -1), (s.landmarks[4], 1)):
            pen.line(np.array([[nx + sx * (s.nose_w + 2), ny - 2],
                               [corner[0] + sx * 4.5, (ny + corner[1]) / 2 + 1],
                               [corner[0] + sx * 3.5, corner[1] + 3]]), _shade(s.skin, 0.8), 1.0)
    pen.fill(np.concatenate([_mouth_points(s, upper_out), _mouth_points(s, lower_out)[::-1]]),
             s.lip_colour)
    if s.mouth_gap > 0:
        opening = np.concatenate([_mouth_points(s, upper_in), _mouth_points(s, lower_in)[::-1]])
        pen.fill(opening, (45, 35, 75))
        if s.smile:
            inner = np.abs(t) < 0.8
            teeth = np.minimum(upper_in + min(4.5, 0.6 * s.mouth_gap + 1), lower_in)
            pen.fill(np.concatenate([_mouth_points(s, upper_in[inner], t[inner]),
                                     _mouth_points(s, teeth[inner], t[inner])[::-1]]),
                     (215, 225, 230))
    pen.line(_mouth_points(s, depth), _shade(s.lip_colour, 0.55), 1.0)
    if s.moustache:
        top = np.minimum(upper_out - 1.0, depth - 3.5) - (4.5 + 1.5 * bend)
        tt = t * 1.15                                  # the ends droop past the corners
        pen.fill(np.concatenate([_mouth_points(s, upper_out - 0.7 + 2.5 * t ** 4, tt),
                                 _mouth_points(s, top, tt)[::-1]]), s.hair)
    if s.beard == "goatee":
        centre, _, down, half = _mouth_frame(s)
        chin = centre + down * (lower_out.max() + 1.5)
        pen.fill(_ellipse(chin[0], chin[1] + 9, half * 0.62, 10), s.hair)


def _draw_front_hair(pen: _Pen, s: Style) -> None:
    """Hair over the forehead, down to the hairline: normal, fringe (bangs) or receding; for a
    bald head, only a band of hair above the ears."""
    cx, cy, ax, ay = _skull(s)
    eye_y = s.landmarks[:2, 1].mean()
    if s.front == "bald":
        if s.hair_name in ("gray", "white", "black", "dark_brown", "brown") and s.back == "none":
            for side in (-1, 1):
                x = cx + side * (s.face_w + 1)
                pen.fill(np.array([[x - side * 6, eye_y - 16], [x + side * 3, eye_y - 18],
                                   [x + side * 3, eye_y + 8], [x - side * 3, eye_y + 6]]), s.hair)
        return
    temple_y = eye_y - (6 if s.front == "bangs" else 14)
    alpha = math.asin(min(0.95, (cy - temple_y) / ay))
    x_edge = ax * math.cos(alpha)
    part = cx + s.hair_part
    u = np.linspace(-1, 1, 33)                        # along the hairline, left to right
    x = cx + x_edge * u
    rel = np.clip((x - part) / (x_edge + abs(s.hair_part)), -1, 1)
    if s.front == "bangs":
        y = s.hairline + (temple_y - s.hairline) * np.abs(rel) ** 5 + 1.8 * (np.arange(33) % 2)
    elif s.front == "receding":
        # the "M": high at the temples' corners, a widow's peak in the middle
        y = s.hairline + 7 * np.exp(-(rel / 0.15) ** 2) - 6 * np.exp(-((np.abs(rel) - 0.6) / 0.2) ** 2)
        y = y + (temple_y - s.hairline) * np.abs(rel) ** 6
    else:
        y = s.hairline + (temple_y - s.hairline) * np.abs(rel) ** 3
    arc_t = np.linspace(-alpha, -math.pi + alpha, 30)   # over the top, right to left
    arc = np.stack([cx + ax * np.cos(arc_t), cy + ay * np.sin(arc_t)], axis=1)
    pen.fill(np.concatenate([np.stack([x, y], axis=1), arc]), s.hair)
    if s.sideburns:
        for side in (-1, 1):
            xo = cx + side * (s.face_w - 0.5)
            pen.fill(np.array([[xo, temple_y - 2], [xo - side * 6, temple_y],
                               [xo - side * 5, eye_y + 20], [xo, eye_y + 20]]), s.hair)


def _draw_glasses(pen: _Pen, s: Style) -> None:
    if s.glasses is None:
        return
    rims = []
    for e in s.landmarks[:2]:
        out = -1.0 if e[0] < s.face_cx else 1.0
        rim = _ellipse(e[0] + out * 1.5, e[1] + 1.5, s.glasses_w, s.glasses_h, n=36,
                       power=s.glasses_round)
        pen.line(rim, s.glasses, 1.8, closed=True)
        rims.append((e[0] + out * 1.5, out))
        # the temple arm, from the rim's outer edge back to the side of the head
        pen.line(np.array([[e[0] + out * (1.5 + s.glasses_w), e[1] - 1.5],
                           [s.face_cx + out * (s.face_w - 1), e[1] - 3]]), s.glasses, 1.8)
    eye_y = s.landmarks[:2, 1].mean()
    (lx, _), (rx, _) = rims
    pen.line(np.array([[lx + s.glasses_w, eye_y - 1], [(lx + rx) / 2, eye_y - 3],
                       [rx - s.glasses_w, eye_y - 1]]), s.glasses, 1.8)


@lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """Fixed Gaussian noise, larger than an image; each face reads a random window of it.

    Drawing fresh noise for every pixel would cost more than the whole face.
    """
    rng = np.random.default_rng(20240607)
    return rng.standard_normal((IMAGE_HEIGHT + 64, IMAGE_WIDTH + 64, 3)).astype(np.float32)


def _camera(img: np.ndarray, s: Style) -> np.ndarray:
    """Light gradient, lens blur and sensor noise, so the JPEG looks photographed, not flat."""
    gain = np.array([[1 - s.light, 1 + s.light]], dtype=np.float32)
    ramp = cv2.resize(gain, (IMAGE_WIDTH, IMAGE_HEIGHT), interpolation=cv2.INTER_LINEAR)
    out = img.astype(np.float32)
    out *= ramp[..., None]
    out = cv2.GaussianBlur(out, (0, 0), s.blur)
    dy, dx = s.noise_seed % 64, (s.noise_seed >> 6) % 64
    out += _noise_tile()[dy:dy + IMAGE_HEIGHT, dx:dx + IMAGE_WIDTH] * np.float32(s.noise)
    return np.clip(out, 0, 255).astype(np.uint8)


def _render(s: Style) -> tuple[np.ndarray, np.ndarray]:
    img = np.empty((IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
    _draw_background(img, s)
    pen = _Pen(img, s.pose)
    for part in (_draw_back_hair, _draw_body, _draw_ears, _draw_face, _draw_facial_hair,
                 _draw_nose, _draw_mouth, _draw_eyes, _draw_brows, _draw_front_hair,
                 _draw_glasses):
        part(pen, s)
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

    # 'forkserver' (or 'spawn'), never 'fork': a forked pool hangs after OpenCV used threads
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                             initializer=_init_worker) as pool:
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


def _zip_member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED        # JPEG does not compress further
    info.external_attr = (0o40755 << 16 | 0x10) if name.endswith("/") else 0o100644 << 16
    return info


def write_synthfaces(out_dir: str | Path, count: int, seed: int, workers: int = 0,
                     quality: int = 90) -> dict:
    """Write img_align_celeba.zip + list_landmarks_align_celeba.txt + list_attr_celeba.txt +
    list_eval_partition.txt into out_dir. Returns a summary dict (count, per-split counts,
    seconds, images_per_s). workers=0 means one process per core.

    The folder appears whole or not at all: it is written under a temporary name and renamed.
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
