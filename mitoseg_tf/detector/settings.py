"""The settings that turn a probability map into counted figures, with what chose them."""

import dataclasses
from typing import Any

from mitoseg_tf.config import check_type
from mitoseg_tf.detection.figures import DEFAULT_MIN_AREA_UM2

# Settings of a plain segmentation checkpoint with no detection.json: the map's own 0.5.
DEFAULT_PIXEL_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class DetectionSettings:
    """Thresholds in the order they apply.

    1. ``tta``: the map is the mean of the 8 flips / quarter turns;
    2. ``pixel_threshold``: candidate figures are the connected blobs above it;
    3. ``min_area_um2``: smaller blobs are dropped;
    4. rescoring (when the detector has a second stage) replaces each blob's score;
    5. ``score_threshold``: figures scoring less are dropped.

    ``chosen_by`` says where the values come from (a card, detection.json,
    the command line), so every printed count can say it.
    """

    pixel_threshold: float = DEFAULT_PIXEL_THRESHOLD
    min_area_um2: float = DEFAULT_MIN_AREA_UM2
    score_threshold: float = 0.0
    tta: bool = False
    figure_score: str = "mean"
    chosen_by: str = "defaults"

    def __post_init__(self):
        for name in ("pixel_threshold", "score_threshold"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]; got {value!r}.")
        if not 0 <= float(self.min_area_um2) < float("inf"):  # NaN fails too
            raise ValueError(f"min_area_um2 must be >= 0 square microns; got {self.min_area_um2!r}.")

    def replace(self, **overrides: Any) -> "DetectionSettings":
        """A copy with the non-None ``overrides`` applied; ``chosen_by`` notes which came from where.

        Raises:
            ValueError: an unknown setting, or a value out of range.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        unknown = sorted(set(given) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(
                f"unknown detection setting(s) {unknown}; known: {[f.name for f in dataclasses.fields(self)]}."
            )
        if not given or set(given) == {"chosen_by"}:
            return dataclasses.replace(self, **given)
        note = given.pop("chosen_by", None) or f"{self.chosen_by}; {', '.join(sorted(given))} given"
        return dataclasses.replace(self, chosen_by=note, **given)

    def describe(self, rescored: bool = False) -> str:
        """One line, in the order the settings apply."""
        steps = [
            "8-fold averaged map" if self.tta else "single-view map",
            f"pixel probability > {self.pixel_threshold:g}",
            f"figures >= {self.min_area_um2:g} um^2",
        ]
        if rescored:
            steps.append("rescored by the figure classifier")
        steps.append(f"score >= {self.score_threshold:.4g}")
        return ", ".join(steps) + f" ({self.chosen_by})"

    @classmethod
    def from_dict(cls, saved: dict, chosen_by: str, where: str | None = None) -> "DetectionSettings":
        """From a card's or detection.json's dict (extra keys such as validation scores are ignored).

        Args:
            saved: the settings; a missing or None one keeps its default.
            chosen_by: what chose them, kept in ``chosen_by``.
            where: the file the error names (default ``chosen_by``).

        Raises:
            ValueError: ``saved`` is not a mapping, a setting has the wrong type
                (``"tta": "false"`` is refused, not read as true) or is out of range.
        """
        if not isinstance(saved, dict):
            raise ValueError(
                f"{where or chosen_by}: expected a mapping of detection settings; got {type(saved).__name__}."
            )
        fields = [f for f in dataclasses.fields(cls) if f.name != "chosen_by"]
        values = {f.name: saved[f.name] for f in fields if saved.get(f.name) is not None}
        for field in fields:
            if field.name in values:
                check_type(values[field.name], field.type, field.name, f"{where or chosen_by}: ")
        try:
            return cls(chosen_by=chosen_by, **values)
        except ValueError as err:
            raise ValueError(f"{where or chosen_by}: {err}") from None
