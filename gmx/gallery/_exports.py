"""Exports of a ranking for other tools: a gene table for variant prioritisation and a Phenopacket.

- :func:`to_gene_tsv`: one row per ranked gene (``ranking.genes``, the same list that
  :func:`~gmx.gallery.to_service_json` writes as ``suggested_genes_list``), with the columns that
  PEDIA-style prioritisation tools read: ``gene``, ``syndrome``, ``distance``, ``gestalt_score``,
  ``rank`` (plus ``syndrome_id``). Distances and scores are written unrounded.
- :func:`to_phenopacket`: a GA4GH Phenopacket (schema v2, the ``phenopackets`` package) whose subject
  is the case, with the confirmed HPO terms as phenotypic features (terms confirmed absent as
  excluded features) and one interpretation per candidate
  syndrome (rank order, OMIM ids where the gallery has them), and :func:`to_phenopacket_json`.

On the synthetic demo both say so (the TSV in a first ``#`` comment line, the Phenopacket in an
external reference of its meta data), with :data:`~gmx.gallery.DEMO_NOTICE`'s text.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gmx.gallery._rank import DEMO_NOTICE, Ranking, SyndromeMatch
from gmx.hpo import HPO_ID_PATTERN, hpo_terms, ontology_version

if TYPE_CHECKING:
    from phenopackets import OntologyClass, Phenopacket

#: Columns of :func:`to_gene_tsv`, in order.
GENE_TSV_COLUMNS = ("gene", "syndrome", "syndrome_id", "distance", "gestalt_score", "rank")
#: Phenopacket schema version written in the meta data.
PHENOPACKET_SCHEMA_VERSION = "2.0"
#: Id of the external reference that marks a demo export.
DEMO_REFERENCE_ID = "gmx:demo"
#: Prefix of a syndrome id that has no OMIM number (a gmx gallery id, not an ontology term).
GALLERY_PREFIX = "gmx.gallery"


def _syndrome_names(ranking: Ranking) -> dict[str, str]:
    return {m.syndrome_id: m.name for m in ranking.syndromes}


def _check_top_k(top_k: int | None) -> None:
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 or None, got {top_k}")


def to_gene_tsv(
    ranking: Ranking,
    *,
    top_k: int | None = None,
    demo: bool = False,
    case_id: str | None = None,
) -> str:
    """The ranked genes as a tab-separated table (header line first), for variant prioritisation.

    Args:
        ranking: from :func:`~gmx.gallery.rank`.
        top_k: at most this many genes (``None``: as many as the ranking holds).
        demo: the ranking comes from the synthetic demo: the first line is ``# `` and the notice.
        case_id: if given, a first column ``case_id`` holds it (to stack the tables of several cases).

    Returns:
        The table; ``syndrome`` is the display name of the syndrome through which the gene was
        reached (its id when the ranking does not list it), ``rank`` is 1-based.
    """
    _check_top_k(top_k)
    names = _syndrome_names(ranking)
    out = io.StringIO()
    if demo:
        out.write(f"# {DEMO_NOTICE}\n")
    lead = () if case_id is None else ("case_id",)
    out.write("\t".join((*lead, *GENE_TSV_COLUMNS)) + "\n")
    first = () if case_id is None else (case_id,)
    for m in ranking.genes[:top_k]:
        cells = (
            *first,
            m.gene,
            names.get(m.syndrome_id, m.syndrome_id),
            m.syndrome_id,
            repr(float(m.distance)),
            repr(float(m.gestalt_score)),
            str(m.rank),
        )
        out.write("\t".join(_tsv_cell(c) for c in cells) + "\n")
    return out.getvalue()


def _tsv_cell(text: str) -> str:
    """A cell without tabs or line breaks (they would break the table)."""
    return " ".join(text.split())


def _disease(m: SyndromeMatch) -> tuple[OntologyClass, bool]:
    """The disease term of a syndrome, and whether it is an OMIM term."""
    from phenopackets import OntologyClass

    if m.omim is not None and m.omim.isdigit():
        return OntologyClass(id=f"OMIM:{m.omim}", label=m.name), True
    return OntologyClass(id=f"{GALLERY_PREFIX}:{m.syndrome_id}", label=m.name), False


def _hpo_ids(hpo_ids: Iterable[str]) -> list[str]:
    """The ids stripped, blanks and duplicates dropped, order kept; a malformed id is refused."""
    ids = list(dict.fromkeys(h.strip() for h in hpo_ids if h.strip()))
    bad = [h for h in ids if not HPO_ID_PATTERN.match(h)]
    if bad:
        raise ValueError(f"not HPO term ids (HP: and seven digits): {', '.join(bad)}")
    return ids


def to_phenopacket(
    ranking: Ranking,
    *,
    case_id: str,
    gallery_version: str,
    hpo_ids: Iterable[str] = (),
    excluded_hpo_ids: Iterable[str] = (),
    top_k: int | None = None,
    demo: bool = False,
    created: datetime | None = None,
) -> Phenopacket:
    """A GA4GH Phenopacket (v2) of the case: subject, confirmed HPO terms, candidate syndromes.

    Each candidate syndrome of the top-k becomes one ``Interpretation`` (id ``<case_id>-rank<N>``,
    rank order, progress ``IN_PROGRESS``) whose diagnosis is ``OMIM:<number>`` when the gallery has
    the number, else ``gmx.gallery:<syndrome id>`` with a note in the summary. The summary also gives
    rank, distance and gestalt score. HPO labels come from :mod:`gmx.hpo`; an id that the shipped
    ontology does not hold keeps its id and gets no label.

    Args:
        ranking: from :func:`~gmx.gallery.rank`.
        case_id: the Phenopacket's and the subject's id.
        gallery_version: the gallery's version, recorded with the OMIM resource.
        hpo_ids: the confirmed HPO term ids (``HP:0000316``), in the order given; duplicates dropped.
        excluded_hpo_ids: HPO term ids confirmed absent: written after the present ones as
            phenotypic features with ``excluded: true``, in the order given; duplicates dropped.
        top_k: at most this many candidate syndromes (``None``: all the ranking holds).
        demo: the ranking comes from the synthetic demo: the meta data's external references hold
            ``gmx:demo`` with the notice, and every summary starts with ``DEMO``.
        created: the creation time written in the meta data (default: now, UTC).

    Raises:
        ValueError: an HPO id that is not ``HP:`` and seven digits, an id both in ``hpo_ids`` and
            ``excluded_hpo_ids``, or a negative ``top_k``.
    """
    from google.protobuf.timestamp_pb2 import Timestamp
    from phenopackets import (
        Diagnosis,
        ExternalReference,
        Individual,
        Interpretation,
        MetaData,
        OntologyClass,
        Phenopacket,
        PhenotypicFeature,
        Resource,
    )

    import gmx

    _check_top_k(top_k)
    ids = _hpo_ids(hpo_ids)
    excluded = _hpo_ids(excluded_hpo_ids)
    both = [h for h in ids if h in excluded]
    if both:
        raise ValueError(f"HPO terms both present and excluded: {', '.join(both)}")
    features = [
        PhenotypicFeature(type=OntologyClass(id=t.hpo_id, label=t.label or ""), excluded=absent)
        for group, absent in ((ids, False), (excluded, True))
        for t in hpo_terms(group)
    ]
    interpretations = []
    gallery_terms = False
    for m in ranking.syndromes[:top_k]:
        disease, is_omim = _disease(m)
        gallery_terms |= not is_omim
        note = "" if is_omim else f" No OMIM number in the gallery; {disease.id} is a gallery id."
        summary = (
            f"GestaltMatcher candidate rank {m.rank}: distance {m.distance:.4f}, "
            f"gestalt score {m.gestalt_score:.4f}.{note}"
        )
        interpretations.append(
            Interpretation(
                id=f"{case_id}-rank{m.rank}",
                progress_status=Interpretation.ProgressStatus.IN_PROGRESS,
                diagnosis=Diagnosis(disease=disease),
                summary=f"DEMO. {summary}" if demo else summary,
            )
        )
    when = Timestamp()
    when.FromDatetime(created if created is not None else datetime.now(UTC))
    resources = [
        Resource(
            id="hp",
            name="human phenotype ontology",
            url="http://purl.obolibrary.org/obo/hp.owl",
            version=ontology_version(),
            namespace_prefix="HP",
            iri_prefix="http://purl.obolibrary.org/obo/HP_",
        ),
        Resource(
            id="omim",
            name="Online Mendelian Inheritance in Man",
            url="https://www.omim.org",
            version=f"as in gallery {ranking.gallery_name} {gallery_version}".strip(),
            namespace_prefix="OMIM",
            iri_prefix="https://www.omim.org/entry/",
        ),
    ]
    if gallery_terms:
        resources.append(
            Resource(
                id=GALLERY_PREFIX,
                name=f"gmx gallery {ranking.gallery_name}".strip(),
                url="",
                version=gallery_version,
                namespace_prefix=GALLERY_PREFIX,
                iri_prefix="",
            )
        )
    meta = MetaData(
        created=when,
        created_by=f"gmx {gmx.__version__}",
        resources=resources,
        phenopacket_schema_version=PHENOPACKET_SCHEMA_VERSION,
        external_references=(
            [ExternalReference(id=DEMO_REFERENCE_ID, description=DEMO_NOTICE)] if demo else []
        ),
    )
    return Phenopacket(
        id=case_id,
        subject=Individual(id=case_id),
        phenotypic_features=features,
        interpretations=interpretations,
        meta_data=meta,
    )


def to_phenopacket_json(
    ranking: Ranking,
    *,
    case_id: str,
    gallery_version: str,
    hpo_ids: Iterable[str] = (),
    excluded_hpo_ids: Iterable[str] = (),
    top_k: int | None = None,
    demo: bool = False,
    created: datetime | None = None,
) -> str:
    """:func:`to_phenopacket` as the schema's JSON (protobuf's JSON mapping, camelCase, indented)."""
    from google.protobuf.json_format import MessageToJson

    packet = to_phenopacket(
        ranking,
        case_id=case_id,
        gallery_version=gallery_version,
        hpo_ids=hpo_ids,
        excluded_hpo_ids=excluded_hpo_ids,
        top_k=top_k,
        demo=demo,
        created=created,
    )
    return MessageToJson(packet, indent=2)


__all__ = [
    "DEMO_REFERENCE_ID",
    "GENE_TSV_COLUMNS",
    "to_gene_tsv",
    "to_phenopacket",
    "to_phenopacket_json",
]
