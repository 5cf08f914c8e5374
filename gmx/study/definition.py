"""A clinician study as a file: a TOML study definition read into frozen dataclasses.

The questionnaire follows the thesis's proposed evaluation (sections 4.5-4.6): 5-point Likert items per
patient-wise map and per composite face, aimed at three goals of Mohseni et al. (the thesis's choice):
algorithmic transparency, user trust and reliance, and model interpretability. The thesis names the
goals and the scale but does not print its item wording, so the default items below are written for
those goals; a study file can replace every word.

``new_template()`` returns a commented TOML file; ``check(path)`` lists its problems (empty when it is
valid); ``load_study(path)`` returns a :class:`StudyDefinition` or raises :class:`StudyError`.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gmx.errors import GmxError

#: The arms: model suggestions only, or suggestions with the attribution maps.
ARM_AI = "ai"
ARM_MAPS = "ai+maps"
ARMS: tuple[str, ...] = (ARM_AI, ARM_MAPS)
#: Randomise the arm once per rater (between raters) or per case (within each rater).
RANDOMISE_CHOICES: tuple[str, ...] = ("rater", "case")
#: The Likert scale: 1 = strongly disagree ... 5 = strongly agree.
LIKERT_POINTS = 5
LIKERT_LABELS: tuple[str, ...] = (
    "Strongly disagree",
    "Disagree",
    "Neither agree nor disagree",
    "Agree",
    "Strongly agree",
)
#: Confidence in a syndrome guess, 1 = a guess ... 5 = certain.
CONFIDENCE_POINTS = 5
CONFIDENCE_LABELS: tuple[str, ...] = ("Guess", "Unsure", "Moderate", "Confident", "Certain")
#: Case sources: the embedded demo's data (``models/demo``) by image id, or the images of a gallery
#: (its stored photos; the case's own patient is left out of the gallery when the model ranks it).
CASE_SOURCE_DEMO = "demo"
CASE_SOURCE_GALLERY = "gallery"
CASE_SOURCES: tuple[str, ...] = (CASE_SOURCE_DEMO, CASE_SOURCE_GALLERY)
DEMO_TEST_SPLIT = "test"
#: ``cases_per_rater`` of a new template (fewer when fewer cases are filled in).
DEFAULT_CASES_PER_RATER = 3


class StudyError(GmxError, ValueError):
    """A study file that cannot be read or is not valid (the message lists every problem)."""


@dataclass(frozen=True)
class LikertItem:
    """One 5-point Likert statement.

    Attributes:
        key: short identifier stored with each answer (``transparency``).
        text: the statement shown to the rater.
        goal: the evaluation goal it measures (for the analysis tables).
    """

    key: str
    text: str
    goal: str = ""


@dataclass(frozen=True)
class StudyDefinition:
    """A clinician evaluation study.

    Attributes:
        name: shown to raters and in exports.
        seed: seeds every randomisation (with the rater id).
        cases: image ids the raters may see (on the demo: held-out test images).
        case_source: where the ids are looked up: ``"demo"`` or ``"gallery"``.
        cases_per_rater: how many of ``cases`` each rater sees.
        methods: attribution methods (registry names) shown, blinded, in the maps arm.
        arms: arms in use (a subset of :data:`ARMS`).
        randomise: ``"rater"`` (one arm per rater) or ``"case"`` (arm per case).
        top_k: how many model suggestions are shown.
        map_items: Likert items asked for every map.
        composite_items: Likert items asked for every composite face.
        composite_syndromes: syndromes whose composite faces are rated (empty: none).
        case_gallery: for ``case_source == "gallery"``: a model set name of the gmx configuration
            (``[model_sets.NAME]``) or a gallery file (relative to the study file); ``""`` for the
            demo. See :func:`gmx.study.cases.case_source_config`.
    """

    name: str
    seed: int
    cases: tuple[str, ...]
    case_source: str
    cases_per_rater: int
    methods: tuple[str, ...]
    arms: tuple[str, ...]
    randomise: str
    top_k: int
    map_items: tuple[LikertItem, ...]
    composite_items: tuple[LikertItem, ...]
    composite_syndromes: tuple[str, ...]
    case_gallery: str = ""

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that changes the raters' plans or what a case id means
        (stored with the answers). Demo studies hash as before gallery sources existed."""
        plan: tuple[object, ...] = (
            self.seed, self.cases, self.cases_per_rater, self.methods, self.arms, self.randomise
        )  # fmt: skip
        if self.case_source != CASE_SOURCE_DEMO:
            plan += (self.case_source, self.case_gallery)
        return hashlib.sha256(repr(plan).encode()).hexdigest()[:16]


DEFAULT_MAP_ITEMS: tuple[LikertItem, ...] = (
    LikertItem(
        "transparency",
        "This map makes clear which facial regions the model based its suggestion on.",
        "algorithmic transparency",
    ),
    LikertItem(
        "plausibility",
        "The highlighted regions agree with the facial features I know for this syndrome.",
        "model interpretability",
    ),
    LikertItem(
        "trust",
        "Seeing this map makes me trust the model's suggestion more.",
        "user trust and reliance",
    ),
    LikertItem(
        "reliance",
        "I would use this map to decide whether to follow the model's suggestion.",
        "user trust and reliance",
    ),
)
DEFAULT_COMPOSITE_ITEMS: tuple[LikertItem, ...] = (
    LikertItem(
        "recognisable",
        "This composite face shows the facial gestalt I expect for this syndrome.",
        "model interpretability",
    ),
    LikertItem(
        "map_regions",
        "The regions the model attends to for this syndrome are the characteristic ones.",
        "algorithmic transparency",
    ),
)


def _items_toml(table: str, items: Sequence[LikertItem]) -> str:
    out = []
    for it in items:
        out.append(f"[[{table}]]\nkey = {_q(it.key)}\ngoal = {_q(it.goal)}\ntext = {_q(it.text)}\n")
    return "\n".join(out)


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_DEMO_CASES_TOML = """# "demo": image ids of the embedded demo (models/demo). Use held-out ids only: on the demo its
# test split (`gmx study new --demo` fills them in). "gallery": image ids of a gallery with stored
# photos (`gmx study new --gallery G`). Patient photos are never copied into the study database:
# it stores image ids only.
source = "demo"
"""

_GALLERY_CASES_TOML = """# "gallery": image ids of a gallery (`gmx study new --gallery G` fills some in). The faces are the
# gallery's stored photos (a gallery without photos, or whose photos may not be shown, cannot be
# used). Each case's own patient is left out of the gallery when the model ranks and explains it
# (leave-one-patient-out, as `gmx gallery calibrate` counts). A real gallery has no true causal
# regions, so the analysis says "not available" for marks vs true regions. Patient photos are
# never copied into the study database: it stores image ids only.
source = "gallery"
# A model set of the gmx configuration ([model_sets.NAME] in GMX_CONFIG: its models and gallery),
# or a gallery file (relative to this file) used with the configuration's models.
gallery = {gallery}
"""


def new_template(
    *,
    cases: Sequence[str] = (),
    name: str = "GestaltMatcher map evaluation",
    gallery: str | None = None,
) -> str:
    """A commented study file with the thesis-derived items (valid as it is when ``cases`` is
    given; otherwise list the case ids first).

    Args:
        cases: the case ids to fill in.
        name: the study's name.
        gallery: ``None`` for demo cases; else the ``cases.gallery`` value (a model set name or a
            gallery file) of a gallery case source.
    """
    case_list = ", ".join(_q(c) for c in cases)
    source = (
        _DEMO_CASES_TOML if gallery is None else _GALLERY_CASES_TOML.format(gallery=_q(gallery))
    )
    per_rater = min(DEFAULT_CASES_PER_RATER, len(cases)) if cases else DEFAULT_CASES_PER_RATER
    return f"""# gmx clinician study definition (TOML). Check it with `gmx study check FILE`.
# Docs: docs/study.md. Raters open the app's Study page with this file and a database.

[study]
name = {_q(name)}
# Seeds every randomisation together with the rater id: the same rater always gets the same
# cases, arms and map order (so closing the tab and coming back resumes exactly).
seed = 0
# How many of the cases below each rater sees (at most the number of cases).
cases_per_rater = {per_rater}
# How many model suggestions (top-k syndromes) the rater sees.
top_k = 5
# Arms: "ai" = model suggestions only; "ai+maps" = suggestions and attribution maps.
arms = ["ai", "ai+maps"]
# "rater": one arm per rater (between raters); "case": an arm per case (within each rater).
randomise = "case"
# Attribution methods shown in the maps arm (gmx registry names). Raters see them blinded
# ("Map A", "Map B", ...) in a random order per case.
methods = ["gradcam", "hirescam"]

[cases]
{source}ids = [{case_list}]

[composite]
# Syndromes whose composite faces are rated after the cases (empty: none).
syndromes = []

# Likert items asked for every map (5 points: strongly disagree .. strongly agree). Derived from
# the thesis's questionnaire goals (sections 4.5-4.6, after Mohseni et al.): algorithmic
# transparency, user trust and reliance, model interpretability. `key` is stored with each answer.
{_items_toml("map_items", DEFAULT_MAP_ITEMS)}
# Likert items asked for every composite face.
{_items_toml("composite_items", DEFAULT_COMPOSITE_ITEMS)}"""


def _problems_items(raw: Any, table: str) -> tuple[list[str], list[LikertItem]]:
    problems: list[str] = []
    items: list[LikertItem] = []
    if raw is None:
        return problems, items
    if not isinstance(raw, list):
        return [f"[[{table}]] must be an array of tables"], items
    seen: set[str] = set()
    for i, it in enumerate(raw):
        where = f"{table} #{i + 1}"
        if not isinstance(it, Mapping):
            problems.append(f"{where}: must be a table with key and text")
            continue
        key, text = it.get("key"), it.get("text")
        if not isinstance(key, str) or not key.isidentifier():
            problems.append(f"{where}: key must be a short identifier, got {key!r}")
            continue
        if key in seen:
            problems.append(f"{where}: duplicate key {key!r}")
        seen.add(key)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where} ({key}): text is missing")
            continue
        goal = it.get("goal", "")
        items.append(LikertItem(key, text.strip(), goal if isinstance(goal, str) else ""))
    return problems, items


def _str_list(value: Any, what: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{what} must be a list of strings, got {value!r}")
        return ()
    return tuple(value)


def _int(value: Any, what: str, minimum: int, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{what} must be an integer >= {minimum}, got {value!r}")
        return minimum
    return value


def parse_study(
    data: Mapping[str, Any], *, known_methods: Sequence[str] | None = None
) -> tuple[StudyDefinition | None, list[str]]:
    """A parsed TOML document -> (the study or ``None``, every problem found)."""
    problems: list[str] = []
    study = data.get("study")
    if not isinstance(study, Mapping):
        return None, ["[study] table is missing"]
    name = study.get("name", "")
    if not isinstance(name, str) or not name.strip():
        problems.append("study.name is missing")
        name = ""
    seed = _int(study.get("seed", 0), "study.seed", 0, problems)
    per_rater = _int(study.get("cases_per_rater"), "study.cases_per_rater", 1, problems)
    top_k = _int(study.get("top_k", 5), "study.top_k", 1, problems)
    arms = _str_list(study.get("arms", list(ARMS)), "study.arms", problems)
    bad_arms = [a for a in arms if a not in ARMS]
    if bad_arms:
        problems.append(f"study.arms: unknown {bad_arms}; choose from {list(ARMS)}")
    if not arms:
        problems.append("study.arms must name at least one arm")
    if len(set(arms)) != len(arms):
        problems.append(f"study.arms has duplicates: {list(arms)}")
    randomise = study.get("randomise", "case")
    if randomise not in RANDOMISE_CHOICES:
        problems.append(
            f"study.randomise must be one of {list(RANDOMISE_CHOICES)}, got {randomise!r}"
        )
    methods = _str_list(study.get("methods", []), "study.methods", problems)
    if ARM_MAPS in arms and not methods:
        problems.append('study.methods must name at least one method for the "ai+maps" arm')
    if len(set(methods)) != len(methods):
        problems.append(f"study.methods has duplicates: {list(methods)}")
    if known_methods is not None:
        unknown = [m for m in methods if m not in known_methods]
        if unknown:
            problems.append(f"study.methods: unknown {unknown}; known: {list(known_methods)}")
    cases_t = data.get("cases", {})
    if not isinstance(cases_t, Mapping):
        problems.append("[cases] must be a table")
        cases_t = {}
    source = cases_t.get("source", CASE_SOURCE_DEMO)
    if source not in CASE_SOURCES:
        problems.append(f"cases.source must be one of {list(CASE_SOURCES)}, got {source!r}")
    case_gallery = cases_t.get("gallery", "")
    if not isinstance(case_gallery, str):
        problems.append(f"cases.gallery must be a string, got {case_gallery!r}")
        case_gallery = ""
    case_gallery = case_gallery.strip()
    if source == CASE_SOURCE_GALLERY and not case_gallery:
        problems.append(
            'cases.source = "gallery" needs cases.gallery: a model set name of the gmx '
            "configuration or a gallery file"
        )
    if source == CASE_SOURCE_DEMO and case_gallery:
        problems.append('cases.gallery is only read with cases.source = "gallery"')
    cases = _str_list(cases_t.get("ids", []), "cases.ids", problems)
    if not cases:
        problems.append("cases.ids is empty: list the image ids raters will see")
    dup = sorted({c for c in cases if cases.count(c) > 1})
    if dup:
        problems.append(f"cases.ids has duplicates: {dup}")
    if cases and per_rater > len(cases):
        problems.append(
            f"study.cases_per_rater ({per_rater}) is more than the {len(cases)} cases listed"
        )
    comp = data.get("composite", {})
    comp_syndromes = _str_list(
        comp.get("syndromes", []) if isinstance(comp, Mapping) else None,
        "composite.syndromes",
        problems,
    )
    p1, map_items = _problems_items(data.get("map_items"), "map_items")
    p2, comp_items = _problems_items(data.get("composite_items"), "composite_items")
    problems += p1 + p2
    if ARM_MAPS in arms and not map_items:
        problems.append('no [[map_items]]: the "ai+maps" arm needs at least one Likert item')
    if comp_syndromes and not comp_items:
        problems.append("composite.syndromes is set but there are no [[composite_items]]")
    if problems:
        return None, problems
    return (
        StudyDefinition(
            name=name.strip(),
            seed=seed,
            cases=cases,
            case_source=source,
            cases_per_rater=per_rater,
            methods=methods,
            arms=arms,
            randomise=randomise,
            top_k=top_k,
            map_items=tuple(map_items),
            composite_items=tuple(comp_items),
            composite_syndromes=comp_syndromes,
            case_gallery=case_gallery,
        ),
        [],
    )


def _read(path: str | Path) -> tuple[dict[str, Any] | None, list[str]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [f"cannot read {p}: {exc.strerror or exc}"]
    except UnicodeDecodeError:
        return None, [f"{p} is not UTF-8 text"]
    return parse_text(text)


def parse_text(text: str) -> tuple[dict[str, Any] | None, list[str]]:
    """TOML text -> (document, problems)."""
    try:
        return tomllib.loads(text), []
    except tomllib.TOMLDecodeError as exc:
        return None, [f"not valid TOML: {exc}"]


def check(
    path: str | Path,
    *,
    known_methods: Sequence[str] | None = None,
    known_cases: Sequence[str] | None = None,
) -> list[str]:
    """Every problem of a study file (empty list: valid).

    Args:
        path: the TOML file.
        known_methods: registry names to check ``study.methods`` against (``None``: not checked).
        known_cases: image ids the case source has (``None``: not checked).
    """
    data, problems = _read(path)
    if data is None:
        return problems
    study, problems = parse_study(data, known_methods=known_methods)
    if study is not None and known_cases is not None:
        known = set(known_cases)
        missing = [c for c in study.cases if c not in known]
        if missing:
            problems.append(f"cases.ids not in the case source: {missing[:10]}")
    return problems


def load_study(path: str | Path, *, known_methods: Sequence[str] | None = None) -> StudyDefinition:
    """Read and validate a study file.

    Raises:
        StudyError: with every problem found.
    """
    data, problems = _read(path)
    study = None
    if data is not None:
        study, problems = parse_study(data, known_methods=known_methods)
    if study is None:
        raise StudyError(f"{path}: " + "; ".join(problems))
    return study


def study_from_text(text: str) -> StudyDefinition:
    """Parse and validate study TOML text (as :func:`load_study`)."""
    data, problems = parse_text(text)
    study = None
    if data is not None:
        study, problems = parse_study(data)
    if study is None:
        raise StudyError("; ".join(problems))
    return study
