"""Which data a cached run was trained on, and what to say when the data here are not those.

A run's ``config.json`` records its data's identity (``data.identity.DataIdentity.record``:
kind, key, digest, number of files), and the per-file digests of that data are kept once per
digest under ``<results>/data/<dataset>/<digest>.json`` (committed with the runs), so that:

- a cache **hit on other pixels** (same key, another digest: the same benchmark computed on
  another CPU or library) is reported once per dataset, naming how many files differ, and the
  cached result is used as it is (``note_difference``);
- a cache **miss** of a configuration that the cache holds for other data is explained: which
  dataset, and how its data differ (``explain_miss``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..config import ModelConfig, TrainConfig, from_dict, key_dict
from ..data.identity import DataIdentity, describe_key, differences
from ..errors import ConfigError
from ..io import write_json
from .specs import RunSpec

_told: set[tuple[str, str, str]] = set()  # (dataset, digest there, digest here) already reported by this process


def reference_file(results: str | Path, dataset: str, digest: str) -> Path:
    return Path(results) / "data" / dataset / f"{digest}.json"


def keep_reference(results: str | Path, identity: DataIdentity) -> None:
    """Store ``identity``'s per-file digests under ``results`` unless they are there already."""
    path = reference_file(results, identity.dataset, identity.digest)
    if not path.is_file():
        write_json(path, {"dataset": identity.dataset, "kind": identity.kind, "key": identity.key,
                          "digest": identity.digest, "files": identity.files})


def difference_text(results: str | Path, recorded: dict[str, Any], identity: DataIdentity) -> str:
    """How the data a run recorded differ from ``identity`` (the data here), in one line."""
    if recorded.get("key") != identity.key:
        return f"cached for {describe_key(recorded.get('key', {}))}; the data here are {identity.describe()}"
    ref = reference_file(results, identity.dataset, recorded.get("digest", "?"))
    if not ref.is_file():
        return f"same key, content digest {recorded.get('digest')} there and {identity.digest} here"
    d = differences(json.loads(ref.read_text())["files"], identity.files)
    parts = [f"{len(d['differ'])} of {len(identity.files)} files have other pixels"] if d["differ"] else []
    parts += [f"{len(d['missing'])} missing here"] if d["missing"] else []
    parts += [f"{len(d['extra'])} more here"] if d["extra"] else []
    example = next(iter(d["differ"] or d["missing"] or d["extra"]), None)
    return ", ".join(parts) + (f", e.g. {example}" if example else "")


def note_difference(results: str | Path, recorded: dict[str, Any] | None, identity: DataIdentity) -> None:
    """One line on stderr, once per dataset and pair of digests, when a cached run's data are not these."""
    if recorded is None or recorded.get("digest") == identity.digest:
        return
    told = (identity.dataset, str(recorded.get("digest")), identity.digest)
    if told in _told:
        return
    _told.add(told)
    print(f"hetero-ae: {identity.dataset}: the cached runs were trained on data of the same key "
          f"({identity.describe()}) whose content differs: {difference_text(results, recorded, identity)}; their "
          "results are used as they are (docs/run-cache.md)", file=sys.stderr)


def spec_of_record(record: dict[str, Any]) -> RunSpec | None:
    """The RunSpec a run folder's ``config.json`` records, or None when the record is not a run's."""
    try:
        return RunSpec(record["dataset"], from_dict(ModelConfig, record["model"]), from_dict(TrainConfig, record["train"]),
                       val_fraction=record["val_fraction"])
    except (ConfigError, KeyError, TypeError, ValueError):
        return None


def same_configuration(spec: RunSpec, results: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """The folders and ``config.json`` records of cached runs of ``spec``'s configuration (on whatever data)."""
    want = {"model": key_dict(spec.model), "train": key_dict(spec.train), "val_fraction": spec.val_fraction}
    found = []
    for config in sorted((Path(results) / "runs" / spec.model.method / spec.dataset).glob("*/config.json")):
        record = json.loads(config.read_text())
        other = spec_of_record(record)
        if other is not None and (config.parent / "metrics.json").is_file() and want == {
                "model": key_dict(other.model), "train": key_dict(other.train), "val_fraction": other.val_fraction}:
            found.append((config.parent, record))
    return found


def explain_miss(spec: RunSpec, results: str | Path, identity: DataIdentity) -> str:
    """Why ``spec`` is not in the cache, in a few words."""
    others = same_configuration(spec, results)
    if not others:
        return "no run of this configuration in the cache"
    recorded = others[0][1].get("data")
    if recorded is None:
        return "cached for data recorded without an identity"
    return difference_text(results, recorded, identity)
