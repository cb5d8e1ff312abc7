"""The card of shipped weights: what ``manifest.json`` says of one ``"<model>/<tag>"``, typed and read in one place.

    >>> card = weights_card("unet/mitosis")
    >>> card.object_class, card.mpp, card.detection["score_threshold"], card.rescorer.window
    >>> [d.terms for d in card.data_licences]      # the conditions of every dataset it was trained on

Trained weights carry the conditions of the data they were trained on: a
manifest entry lists those datasets by name (``"data_licences": ["amibr",
"monuseg"]``, keys of ``DATA_LICENCES``) and its card holds each one's terms.
"""

import dataclasses
import json
import os

from mitoseg_tf.config import require_fields
from mitoseg_tf.inference.resample import check_mpp

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
MANIFEST = "manifest.json"
# The pixel size every shipped network was trained at when its card does not say (MoNuSeg and AMi-Br, 40x).
DEFAULT_TRAINING_MPP = 0.25


def weights_folder(weights_dir=None):
    """``weights_dir``, or the package's weights folder (``WEIGHTS_DIR`` read at each call, so a test may move it)."""
    return weights_dir or WEIGHTS_DIR


def read_manifest(weights_dir=None):
    """``{"<model>/<tag>": raw entry}`` of ``manifest.json`` ({} when none ships)."""
    path = os.path.join(weights_folder(weights_dir), MANIFEST)
    if not os.path.isfile(path):
        return {}
    with open(path) as fh:
        try:
            manifest = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON (cut short or edited?): {err}.") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: expected a mapping of MODEL/TAG to entries; got {type(manifest).__name__}.")
    return manifest


@dataclasses.dataclass(frozen=True)
class DataLicence:
    """The conditions of one training dataset, which weights trained on it inherit."""

    dataset: str  # the key of DATA_LICENCES, as manifest entries name it
    source: str  # the dataset and the paper to cite
    terms: str


# Every dataset shipped weights may be trained on (from datasets/README.md and the datasets' own releases).
# To ship weights trained on another, add it here. Mitosis v2 (zoo/recipes/mitosis_v2.yaml) will list
# ["mitos_atypia14", "amibr", "monuseg"].
DATA_LICENCES = {
    d.dataset: d
    for d in (
        DataLicence(
            "monuseg",
            "MoNuSeg 2018 (Kumar et al., IEEE TMI 2017)",
            "CC BY-NC-SA 4.0: attribution, non-commercial use only, derivatives under the same licence",
        ),
        DataLicence(
            "amibr",
            "AMi-Br (Bertram et al. 2025); crops of TUPAC16 and MIDOG 2021 images",
            "research use under the terms of TUPAC16 and MIDOG 2021, whose images the crops are; cite AMi-Br",
        ),
        DataLicence(
            "mitos_atypia14",
            "MITOS-ATYPIA-14 (ICPR 2014 contest; Roux et al.)",
            "research use under the contest's terms; cite the contest",
        ),
        DataLicence(
            "mitos12",
            "MITOS-2012 (ICPR 2012 contest; Roux et al., J Pathol Inform 2013)",
            "research use under the contest's terms; cite the paper",
        ),
        DataLicence(
            "tupac16",
            "TUPAC16 (Veta et al., Med Image Anal 2019)",
            "research use under the challenge's terms; cite the paper",
        ),
        DataLicence(
            "midog",
            "MIDOG++ (Aubreville et al., Sci Data 2023)",
            "CC BY-NC-SA 4.0: attribution, non-commercial use only, derivatives under the same licence",
        ),
        DataLicence("synthetic", "mitoseg-tf's procedural tiles (datasets/synthetic.md)", "MIT, as the code"),
    )
}


def data_licences(names):
    """The ``DataLicence`` of each dataset name; one ValueError naming the unknown ones and the known."""
    unknown = [n for n in names if n not in DATA_LICENCES]
    if unknown:
        raise ValueError(
            f"No licence recorded for dataset(s) {', '.join(map(repr, unknown))}; known: {', '.join(DATA_LICENCES)}. "
            "Add the dataset's terms to DATA_LICENCES in mitoseg_tf/zoo/weights_card.py."
        )
    return tuple(DATA_LICENCES[n] for n in names)


@dataclasses.dataclass(frozen=True)
class RescorerCard:
    """The second-stage figure classifier shipped beside detection weights."""

    file: str
    arguments: dict
    detection: dict  # settings chosen on its scores: pixel_threshold, min_area_um2, score_threshold, ...
    training: dict
    path: str

    @property
    def window(self):
        return int(self.arguments["window"])


@dataclasses.dataclass(frozen=True)
class WeightsCard:
    """One shipped weights entry. ``detection`` holds the figure settings chosen on validation (detectors only)."""

    key: str
    model: str
    tag: str
    file: str
    path: str
    arguments: dict
    task: str = ""  # e.g. "nucleus segmentation (class 1 = nucleus)"; mitosis when it does not say nucleus
    data: str = ""
    licence: str = ""
    data_licences: tuple[DataLicence, ...] = ()  # every training dataset's terms (manifest: their names)
    threshold: float = 0.5
    mpp: float = DEFAULT_TRAINING_MPP
    recipe: str = None
    precision: str = None
    machine: str = None
    train_seconds: float = None
    validation: dict = None
    validation_whole_images: dict = None
    test: dict = None  # the held-out split's metrics, shaped as validation's: chose nothing
    chosen_by: str = None  # what chose the weights and their settings, and what did not
    detection: dict = None
    rescorer: RescorerCard = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def object_class(self):
        """What one detected object is: ``"Nucleus"`` for nucleus weights, ``"Mitosis"`` otherwise."""
        return "Nucleus" if "nucleus" in (self.task or "").lower() else "Mitosis"

    @property
    def is_mitosis(self):
        return self.object_class == "Mitosis"

    def to_dict(self):
        """The card as plain JSON-ready data (the rescorer's local path left out)."""
        out = dataclasses.asdict(self)
        out.pop("path")
        if out["rescorer"]:
            out["rescorer"].pop("path")
        return out


_FIELDS = {f.name for f in dataclasses.fields(WeightsCard)}


def _card(key, raw, weights_dir):
    folder = weights_folder(weights_dir)
    model, tag = key.split("/")
    require_fields(raw, ("file", "arguments"), f"{MANIFEST}, {key}")
    rescorer = raw.get("rescorer")
    if rescorer is not None:
        require_fields(rescorer, ("file", "arguments", "detection", "training"), f"{MANIFEST}, {key}, rescorer")
        rescorer = RescorerCard(
            **{k: rescorer[k] for k in ("file", "arguments", "detection", "training")},
            path=os.path.join(folder, rescorer["file"]),
        )
    known = {k: v for k, v in raw.items() if k in _FIELDS and k not in ("rescorer", "key", "model", "tag", "path")}
    mpp = raw.get("mpp") or (raw.get("detection") or {}).get("mpp") or DEFAULT_TRAINING_MPP
    known["mpp"] = check_mpp(mpp, f"{MANIFEST}, {key} (mpp)")
    known["data_licences"] = data_licences(raw.get("data_licences", ()))
    return WeightsCard(
        key=key,
        model=model,
        tag=tag,
        path=os.path.join(folder, raw["file"]),
        rescorer=rescorer,
        extra={k: v for k, v in raw.items() if k not in _FIELDS},
        **known,
    )


def shipped_cards(name=None, weights_dir=None):
    """``{"<model>/<tag>": WeightsCard}`` of every shipped weights (of model ``name`` only, when given)."""
    return {
        key: _card(key, raw, weights_dir)
        for key, raw in sorted(read_manifest(weights_dir).items())
        if name is None or key.split("/")[0] == name
    }


def weights_card(key, weights_dir=None):
    """The card of ``"<model>/<tag>"``; one ValueError listing what ships otherwise."""
    cards = shipped_cards(weights_dir=weights_dir)
    if not isinstance(key, str) or key not in cards:
        raise ValueError(
            f"No shipped weights {key!r}; shipped (model/tag): {', '.join(cards) or 'none'}. "
            "Pass a trained .keras file (a checkpoint) for your own."
        )
    return cards[key]
