"""The shared vocabulary, on the bottom floor (imports nothing from avdetect).

Everything that preprocessing, training, evaluation and ``detect`` must agree on by name or by
size is written here once:

* :data:`CATEGORIES`: the four manipulation categories, named as FakeAVCeleb's folders, in
  the model's order (index = ``modify_video + 2 * modify_audio``; ``category_logits`` and
  ``category_probabilities`` follow it), and :data:`MODIFY_TYPES`: AV-Deepfake1M's
  ``modify_type`` names in the same order. :func:`category_of`, :func:`modify_type_of`,
  :func:`category_index` and :func:`modalities_of` convert between them.
* :data:`MOUTH_SIZE`, :data:`FACE_SIZE`: the side of every mouth / face crop (pixels); the
  model's ``input_mouth_size`` / ``input_face_size`` default to them and the preprocessing
  cache records them.
* :data:`DECODE_MAX_SIDE`: the longer side (pixels) that frames are decoded at for face
  tracking and cropping, by preprocessing (``avdetect preprocess``), forging
  (``avdetect forge``) and ``detect`` alike, so that training crops and serving crops come
  from frames of the same size. The cache records it and refuses a mismatch.
* :data:`CROP_RULE`: the version of the crop rule (:mod:`avdetect.faces.crops`): 1 axis-aligned
  crops, 2 crops levelled on the eyes where landmarks give the head roll. Haar crops (no
  landmarks) are the same under both. The cache records it and refuses landmark crops of
  another rule.
"""
from __future__ import annotations

#: Manipulation categories in the model's order: index = modify_video + 2 * modify_audio.
CATEGORIES: tuple[str, str, str, str] = (
    "RealVideo-RealAudio", "FakeVideo-RealAudio", "RealVideo-FakeAudio", "FakeVideo-FakeAudio")
#: AV-Deepfake1M ``modify_type`` names, in the order of :data:`CATEGORIES`.
MODIFY_TYPES: tuple[str, str, str, str] = ("real", "visual_modified", "audio_modified", "both_modified")

#: Side of a mouth crop (pixels, square RGB).
MOUTH_SIZE: int = 96
#: Side of a face crop (pixels, square RGB).
FACE_SIZE: int = 128
#: Longer side of decoded frames for face tracking and crops (preprocessing, forging, detect).
DECODE_MAX_SIDE: int = 640
#: Version of the crop rule (1: axis-aligned; 2: levelled on the eyes where landmarks are measured).
CROP_RULE: int = 2


def category_index(modify_video: bool, modify_audio: bool) -> int:
    """Index into :data:`CATEGORIES` (and ``category_logits``) of a clip whose video / audio
    is manipulated."""
    return int(bool(modify_video)) + 2 * int(bool(modify_audio))


def category_of(modify_video: bool, modify_audio: bool) -> str:
    """The category name (``"FakeVideo-RealAudio"``, ...) of a clip whose video / audio is manipulated."""
    return CATEGORIES[category_index(modify_video, modify_audio)]


def modify_type_of(modify_video: bool, modify_audio: bool) -> str:
    """The AV-Deepfake1M ``modify_type`` (``"visual_modified"``, ...) of such a clip."""
    return MODIFY_TYPES[category_index(modify_video, modify_audio)]


def modalities_of(name: str) -> tuple[bool, bool]:
    """``(modify_video, modify_audio)`` of a category or ``modify_type`` name.

    Raises ``ValueError`` naming the known names for anything else.
    """
    for names in (CATEGORIES, MODIFY_TYPES):
        if name in names:
            i = names.index(name)
            return bool(i & 1), bool(i & 2)
    raise ValueError(f"unknown category {name!r}; known: {', '.join(CATEGORIES + MODIFY_TYPES)}")
