"""Grad-CAM++ heatmaps over the canonical printout, and how the heat splits over the leads.

The CAM comes from Triton at the last conv block's resolution (1/32 of the canonical size);
it is upsampled to the canonical image, where each of the 12 lead panels has a known box
(``ecgscreen.imaging.canonical.panel_box``). A lead's attribution is its panel's share of
the total heat, so the shares sum to 1 and read as "the scar call rests on V1-V4".

Torch-free (numpy and Pillow): the gateway's ``/explain`` and ``/report`` and
``ecgscreen screen --explain-dir`` draw the same picture from Triton's outputs.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .contract import TASK_NAMES, TASKS, risk_level
from .leads import LEADS, TERRITORIES, panel_box

__all__ = [
    "upsample",
    "lead_attribution",
    "territory_attribution",
    "top_leads",
    "overlay_titles",
    "overlay_image",
    "overlay_png",
    "explain_picture",
    "SCALE",
    "HEADER_PX",
]

SCALE = 2  # the overlay is drawn at twice the canonical size, for reading
HEADER_PX = 48
# A perceptual heat ramp (dark blue -> cyan -> yellow -> red), as (position, RGB) stops.
_STOPS = np.array([0.0, 0.35, 0.65, 1.0])
_COLOURS = np.array([[20, 30, 140], [0, 190, 220], [250, 220, 40], [215, 25, 25]], dtype=np.float32)


def upsample(cam: np.ndarray, size: int) -> np.ndarray:
    """A (h, w) map, non-negative, bilinearly resized to (size, size)."""
    image = Image.fromarray(np.clip(cam, 0, None).astype(np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))


def lead_attribution(heat: np.ndarray) -> dict[str, float]:
    """Share of the heat in each lead's panel (sums to 1; uniform if there is no heat)."""
    size = heat.shape[0]
    sums = {}
    for lead in LEADS:
        top, left, bottom, right = panel_box(lead, size)
        sums[lead] = float(heat[top:bottom, left:right].sum())
    total = sum(sums.values())
    if total <= 0:
        return {lead: 1.0 / len(LEADS) for lead in LEADS}
    return {lead: value / total for lead, value in sums.items()}


def territory_attribution(shares: dict[str, float]) -> dict[str, float]:
    """Heat per coronary territory (leads can be in one territory only; others are 'other')."""
    out = {name: sum(shares[lead] for lead in leads) for name, leads in TERRITORIES.items()}
    out["other"] = max(0.0, 1.0 - sum(out.values()))
    return out


_LUT = np.stack([np.interp(np.linspace(0, 1, 256), _STOPS, _COLOURS[:, c]) for c in range(3)], axis=1).astype(
    np.uint8
)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def top_leads(shares: dict[str, float], n: int = 4) -> list[str]:
    """The ``n`` leads with the largest share of the heat, largest first."""
    return sorted(shares, key=shares.get, reverse=True)[:n]


def overlay_titles(task: str, probability: float, shares: dict[str, float]) -> tuple[str, str]:
    """The title bar of an explain picture: the task's probability and risk, the leads with
    most heat, and what the picture is for."""
    title = f"Grad-CAM++  {TASK_NAMES[task]}: {probability:.0%} ({risk_level(probability)} risk)"
    heat_on = ", ".join(f"{lead} {shares[lead]:.0%}" for lead in top_leads(shares))
    return title, f"heat on {heat_on}   |   research use only, not for diagnosis"


def explain_picture(
    canonical: np.ndarray, cam: np.ndarray, task: str, probability: float, tasks: tuple[str, ...] = TASKS
) -> Image.Image:
    """``/explain``'s picture of one task from Triton's outputs (``cam``: the maps of the
    model's ``tasks``, in that order)."""
    heat = upsample(cam[tasks.index(task)], canonical.shape[0])
    return overlay_image(canonical, heat, *overlay_titles(task, probability, lead_attribution(heat)))


def overlay_png(canonical: np.ndarray, heat: np.ndarray, title: str, subtitle: str) -> bytes:
    """:func:`overlay_image` as PNG."""
    buffer = io.BytesIO()
    overlay_image(canonical, heat, title, subtitle).save(
        buffer, format="PNG", compress_level=1
    )  # 4x faster, ~30 % larger
    return buffer.getvalue()


def overlay_image(canonical: np.ndarray, heat: np.ndarray, title: str, subtitle: str) -> Image.Image:
    """The canonical printout with the heat blended in, lead labels and a title bar (RGB).

    Size: (SCALE * S) wide, (SCALE * S + HEADER_PX) high for an S x S canonical image.
    """
    size = canonical.shape[0]
    peak = float(heat.max())
    level = np.clip(heat * (255.0 / peak if peak > 0 else 0.0), 0, 255).astype(np.uint8)
    # Blending in Pillow (C): heat colours over the paper, weight 0.15-0.7 by heat, none where
    # the heat is under 5 % of its peak; the trace stays dark on top.
    alpha = np.where(level > 12, (38 + 0.55 * level).astype(np.uint8), 0).astype(np.uint8)
    paper = Image.fromarray(canonical).convert("RGB")
    blended = Image.composite(Image.fromarray(_LUT[level]), paper, Image.fromarray(alpha))
    ink = Image.fromarray(np.where(canonical < 128, 255, 0).astype(np.uint8))
    blended = Image.composite(Image.fromarray(canonical // 5).convert("RGB"), blended, ink)
    picture = blended.resize((SCALE * size, SCALE * size), Image.Resampling.NEAREST)
    page = Image.new("RGB", (SCALE * size, SCALE * size + HEADER_PX), (255, 255, 255))
    page.paste(picture, (0, HEADER_PX))
    draw = ImageDraw.Draw(page)
    font, small = _font(18), _font(13)
    draw.text((8, 4), title, font=font, fill=(0, 0, 0))
    draw.text((8, 27), subtitle, font=small, fill=(90, 90, 90))
    for lead in LEADS:
        top, left, _, _ = panel_box(lead, size)
        draw.text((SCALE * left + 4, HEADER_PX + SCALE * top + 2), lead, font=small, fill=(0, 0, 160))
    for k in range(1, 6):  # faint panel separators
        y = HEADER_PX + SCALE * k * (size // 6)
        draw.line([(0, y), (SCALE * size, y)], fill=(210, 210, 210))
    draw.line(
        [(SCALE * size // 2, HEADER_PX), (SCALE * size // 2, SCALE * size + HEADER_PX)], fill=(210, 210, 210)
    )
    return page
