"""The traces of a cart's PDF as the numbers it drew them from.

A cart writes each lead as a polyline through its samples. Rasterising that and reading it
back loses what no pixel can hold (samples 0.05 mm apart at 25 mm/s and 500 Hz); reading the
polyline's coordinates loses nothing. This module interprets page 1's content stream just
far enough for that: the graphics state (``q``/``Q``, ``cm``), the stroke colour and the
path operators, and returns every dark stroked polyline in page millimetres (origin top
left, y down, as ``synth.printout`` draws). Which row and lead each belongs to is the
layout's business (``imaging.vector_trace``). ``printed_gain`` reads the gain a page prints
as text ("10 mm/mV"), for a page without a calibration pulse.

Anything it does not follow (form XObjects, filters other than Flate / ASCII85 /
ASCIIHex, an unparseable stream) returns ``None``: the caller reads the rendered page
instead, so the fast path can only ever add precision, never refuse a file.
"""

from __future__ import annotations

import io
import logging
import re
import zlib

import numpy as np

from .errors import IntakeError
from .limits import DEFAULT_LIMITS, Limits
from .pdf_render import too_complex

__all__ = ["Polyline", "dark_polylines", "printed_gain"]

log = logging.getLogger(__name__)

POINTS_PER_MM = 72 / 25.4
_DARK_LUMA = 110  # as pdf_render: strokes darker than this are traces, not grid
_POINT_OPS = {b"m", b"l", b"c", b"v", b"y"}  # their last two operands are the current point
_STROKE_OPS = {b"S", b"s", b"B", b"B*", b"b", b"b*"}
_END_OPS = {b"f", b"F", b"f*", b"n"}
_TEXT_OPS = {b"Tj", b"TJ", b"'", b'"'}  # each shows a text object
_TOKEN_WIDTH = 16  # bytes kept of each token: every operator and any number a cart writes

Polyline = np.ndarray  # (N, 2) float64 mm: x right, y down

_LITERAL = re.compile(rb"\(((?:[^()\\]|\\.)*)\)")  # a PDF literal string: (...)
# "10 mm/mV", "5mm/mV", "2,5 mm/mV"; kerned text may split the unit into several strings.
_GAIN_TEXT = re.compile(rb"(\d+(?:[.,]\d+)?)\s*m\s*m\s*/\s*m\s*V", re.IGNORECASE)
_PLAUSIBLE_GAIN = (2.0, 40.0)  # mm/mV


def _ascii85(data: bytes) -> bytes:
    """ASCII85 (``<~ ... ~>``) decoded with numpy: reportlab's default encoding, which
    Python's own decoder takes ~70 ms for a page of traces."""
    data = bytes(data).strip()
    if data.startswith(b"<~"):
        data = data[2:]
    data = data.split(b"~>")[0]
    data = data.translate(None, b" \t\r\n\x00\x0c").replace(b"z", b"!!!!!")
    pad = -len(data) % 5
    digits = np.frombuffer(data + b"u" * pad, dtype=np.uint8).astype(np.uint64) - 33
    if digits.size == 0:
        return b""
    groups = digits.reshape(-1, 5)
    if (groups > 84).any():
        raise ValueError("not ASCII85")
    words = (groups * np.array([85**4, 85**3, 85**2, 85, 1], dtype=np.uint64)).sum(axis=1)
    out = words.astype(">u4").tobytes()
    return out[: len(out) - pad] if pad else out


def _numbers(tokens: np.ndarray) -> np.ndarray:
    """PDF numbers (``[+-]digits[.digits]``; the format has no exponents) as float64, parsed
    column-wise: numpy's own bytes-to-float conversion took a quarter of a cart PDF's intake.
    Digits become an exact integer and one division rounds it, as ``float()`` does."""
    width = tokens.dtype.itemsize
    if tokens.size == 0 or width > 17:  # an int64 holds 18 digits: leave long ones to numpy
        return tokens.astype(np.float64)
    chars = tokens.view(np.uint8).reshape(tokens.size, width)
    chars = chars[:, : int(np.flatnonzero(chars.any(axis=0)).max(initial=0)) + 1]  # the columns used
    width = chars.shape[1]
    digit = (chars >= 48) & (chars <= 57)
    point = chars == 46
    sign = (chars[:, 0] == 45) | (chars[:, 0] == 43)
    used = chars != 0
    valid = digit | point | ~used
    valid[:, 0] |= sign
    packed = (used[:, :-1] >= used[:, 1:]).all()  # the padding only at the end
    if not (valid.all() and packed) or (point.sum(axis=1) > 1).any() or not digit.any(axis=1).all():
        return tokens.astype(np.float64)  # not plain decimals: numpy raises on what is wrong
    value = np.zeros(tokens.size, dtype=np.int64)
    decimals = np.zeros(tokens.size, dtype=np.int64)
    seen_point = np.zeros(tokens.size, dtype=bool)
    for column in range(width):  # columns, not tokens: a pass per digit over the page's numbers
        d = digit[:, column]
        value = np.where(d, value * 10 + (chars[:, column].astype(np.int64) - 48), value)
        decimals += d & seen_point
        seen_point |= point[:, column]
    result = value / 10.0**decimals
    return np.where(chars[:, 0] == 45, -result, result)


def _decode(stream) -> bytes | None:
    """The decoded bytes of a pypdf stream object, or ``None`` for a filter we skip."""
    filters = stream.get("/Filter")
    filters = [] if filters is None else (list(filters) if isinstance(filters, list) else [filters])
    data = stream._data  # encoded bytes
    for name in filters:
        name = str(name)
        if name in ("/FlateDecode", "/Fl"):
            if stream.get("/DecodeParms"):
                return None  # predictors: not worth following
            data = zlib.decompress(data)
        elif name in ("/ASCII85Decode", "/A85"):
            data = _ascii85(data)
        elif name in ("/ASCIIHexDecode", "/AHx"):
            data = bytes.fromhex(bytes(data).split(b">")[0].decode("ascii", "replace"))
        else:
            return None
    return data


def _page_content(data: bytes) -> tuple[bytes, float] | None:
    """Page 1's decoded content stream and its height (points), or ``None``."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    page = reader.pages[0]
    resources = page.get("/Resources") or {}
    resources = resources.get_object() if hasattr(resources, "get_object") else resources
    xobjects = resources.get("/XObject") if resources else None
    if xobjects and len(xobjects.get_object()):
        return None  # forms or images: the drawing may live there
    contents = page.get("/Contents")
    if contents is None:
        return None
    contents = contents.get_object()
    streams = [c.get_object() for c in contents] if isinstance(contents, list) else [contents]
    parts = []
    for stream in streams:
        decoded = _decode(stream)
        if decoded is None:
            return None
        parts.append(decoded)
    box = [float(v) for v in page.mediabox]
    return b"\n".join(parts), box[3] - box[1]


def _luma(op: bytes, operands: list[bytes]) -> float | None:
    """The stroke colour's luma (0..255) set by a colour operator, ``None`` if unknown."""
    try:
        values = [float(v) for v in operands]
    except ValueError:
        return None
    if op == b"G" and len(values) >= 1:
        return 255 * values[-1]
    if op == b"RG" and len(values) >= 3:
        r, g, b = values[-3:]
        return 255 * (0.299 * r + 0.587 * g + 0.114 * b)
    if op == b"K" and len(values) >= 4:
        c, m, y, k = values[-4:]
        return 255 * (1 - min(1.0, 0.299 * c + 0.587 * m + 0.114 * y + k))
    if op in (b"SC", b"SCN") and len(values) in (1, 3, 4):
        return _luma({1: b"G", 3: b"RG", 4: b"K"}[len(values)], operands)
    return None


def _interpret(content: bytes, height_pt: float, limits: Limits) -> list[Polyline]:
    words = content.split()
    if not words:
        return []
    # One width for all (measuring every token first took as long as the conversion): longer
    # tokens (text, names) keep their first bytes, no operator is that long, and a point's
    # coordinate that long is refused below.
    tokens = np.array(words, dtype=f"S{_TOKEN_WIDTH}")
    first = tokens.view(np.uint8).reshape(tokens.size, -1)[:, 0]
    numeric = ((first >= 48) & (first <= 57)) | (first == 45) | (first == 46) | (first == 43)
    op_index = np.flatnonzero(~numeric)
    ops = tokens[op_index]
    # The page's drawing objects (a path per painting operator, a text object per string
    # shown), counted against the limit pdfium's count is held to when it renders a page.
    if error := too_complex(int(np.isin(ops, list(_STROKE_OPS | _END_OPS | _TEXT_OPS)).sum()), limits):
        raise error
    is_point = np.isin(ops, list(_POINT_OPS))
    point_index = op_index[is_point]
    coordinates = tokens[np.r_[point_index - 2, point_index - 1]]  # every x, then every y
    if coordinates.view(np.uint8).reshape(-1, _TOKEN_WIDTH)[:, -1].any():  # as long as the width: cut?
        raise ValueError("a point's coordinate is longer than a cart writes one")
    xs, ys = np.split(_numbers(coordinates), 2)
    starts = ops[is_point] == b"m"
    point_rank = np.cumsum(is_point) - 1  # operator k -> index of the last point op up to k

    polylines: list[Polyline] = []
    ctm = np.eye(3)
    luma: float | None = 0.0  # the default stroke colour is black
    stack: list[tuple[np.ndarray, float | None]] = []
    path_from = 0  # first point of the current path
    in_text = False
    for k in np.flatnonzero(~is_point).tolist():
        op = ops[k]
        if in_text:
            in_text = op != b"ET"
            continue
        if op == b"BT":
            in_text = True
        elif op == b"q":
            stack.append((ctm.copy(), luma))
        elif op == b"Q":
            if stack:
                ctm, luma = stack.pop()
        elif op == b"cm":
            i = op_index[k]
            a, b, c, d, e, f = tokens[i - 6 : i].astype(np.float64)
            ctm = np.array([[a, b, 0], [c, d, 0], [e, f, 1]]) @ ctm
        elif op in (b"G", b"RG", b"K", b"SC", b"SCN"):
            i = op_index[k]
            previous = op_index[k - 1] if k else -1
            luma = _luma(op, list(tokens[previous + 1 : i]))
        elif op in (b"BI", b"Do", b"sh"):
            raise ValueError(f"content operator {op!r} is not followed")
        elif op in _STROKE_OPS or op in _END_OPS:
            path_to = int(point_rank[k]) + 1
            if op in _STROKE_OPS and luma is not None and luma < _DARK_LUMA and path_to - path_from >= 2:
                pts = np.column_stack(
                    [xs[path_from:path_to], ys[path_from:path_to], np.ones(path_to - path_from)]
                )
                page = pts @ ctm
                cuts = np.flatnonzero(starts[path_from:path_to])
                for piece in np.split(page[:, :2], cuts[cuts > 0]):
                    if len(piece) >= 2:
                        polylines.append(
                            np.column_stack([piece[:, 0], height_pt - piece[:, 1]]) / POINTS_PER_MM
                        )
            path_from = path_to
    return polylines


def dark_polylines(data: bytes, limits: Limits = DEFAULT_LIMITS) -> list[Polyline] | None:
    """Every dark stroked polyline of page 1 in page mm, or ``None`` when the page is drawn in
    a way this reader does not follow (the rendered page is read instead); ``IntakeError``
    ('pdf_too_complex') for a page of more drawing objects than ``limits`` allow. The caller
    has refused what ``pdf_render.check_document`` refuses."""
    try:
        found = _page_content(data)
        if found is None:
            return None
        return _interpret(*found, limits)
    except IntakeError:
        raise
    except Exception as error:  # noqa: BLE001 - any surprise means: read the pixels instead
        log.debug("vector reading skipped: %s", type(error).__name__)
        return None


def printed_gain(data: bytes) -> float | None:
    """The gain (mm/mV) page 1 prints as text, when its text is plain literal strings and
    names one plausible gain; ``None`` otherwise (text drawn as glyph ids or outlines, or
    several gains on one page)."""
    try:
        found = _page_content(data)
    except Exception:  # noqa: BLE001 - unreadable: no printed gain
        return None
    if found is None:
        return None
    text = b" ".join(_LITERAL.findall(found[0]))
    gains = {float(m.group(1).replace(b",", b".")) for m in _GAIN_TEXT.finditer(text)}
    gains = {g for g in gains if _PLAUSIBLE_GAIN[0] <= g <= _PLAUSIBLE_GAIN[1]}
    return gains.pop() if len(gains) == 1 else None
