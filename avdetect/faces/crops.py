"""Crop geometry: the one place where the fixed crop sizes are recorded.

Every crop avdetect produces or consumes is square RGB uint8:

* mouth crop: ``MOUTH_SIZE x MOUTH_SIZE`` pixels, centred on the mouth;
* face crop: ``FACE_SIZE x FACE_SIZE`` pixels, the smoothed face box with a margin.
"""
from __future__ import annotations

MOUTH_SIZE: int = 96
FACE_SIZE: int = 128
