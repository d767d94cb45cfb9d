"""Profiles (``profiles/<name>.yaml``): one file of settings per scale of experiment (DESIGN 7).

- ``smoke``: tiny images and a few steps; the whole of ``./run_all.sh`` in minutes (CI).
- ``cpu`` (default): the embedded synthetic data on a 2-core machine in about an hour.
- ``study``: the decision study on the cpu profile's data: one stopping rule for every method, five
  seeds for Hetero-AE and the contending baselines, Table I at 256 px and under a second rule.
- ``paper``: the paper's protocol (256 px, batch 200, Adam 1e-4, 200 epochs, alpha 0.7,
  5 seeds) on the real datasets, on GPUs.

A profile is read once, into a typed, checked ``Profile``: by ``hetero-ae run``, ``compare`` and
``run-profile``, and by each notebook's first cell (``report.notebook_setup.setup``; papermill
passes the notebooks only the profile's name). An unknown setting, or a value of the wrong type,
is an error naming the file and the setting. Per-method settings live under ``method_settings``:
``epochs``, ``batch_size``, ``lr``, ``encoder`` ("auto" = the method's paper backbone when
its ImageNet weights are available, else the offline EfficientNet-Lite0), ``params`` (the
method's own hyper-parameters), ``precision`` (over the profile's) and any other
``ModelConfig`` field (``decoder``, ``upsample``, ``alpha``, ``map_sigma``, ...).

Convergence (``hetero_ae.training.stopping``): ``patience`` and ``min_delta`` (per method, or for the
whole profile) stop a run on its held-out normals' loss; ``epochs`` is then the cap; ``keep`` says
which epoch's weights it keeps, and ``lr_patience``/``lr_factor`` lower its learning rate on the way.

How runs execute (``hetero_ae.training.runtime``): ``precision`` (``fp32``, the default and the
paper's, or ``bf16``; part of each run's configuration) and ``torch_compile`` (``false``, the
default, ``true`` for inductor, or a torch.compile backend; not part of the cache key).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError

PROFILE_DIRS = (Path("profiles"), Path(__file__).resolve().parents[2] / "profiles")  # the repository's


def profile_path(name: str) -> Path:
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return Path(name)
    for folder in PROFILE_DIRS:
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    raise UserError(f"no profile {name!r} (looked for {name}.yaml in {', '.join(map(str, PROFILE_DIRS))})")


def size_folder(size: int) -> str:
    """The folder under the data root of synthetic data generated at ``size`` px for a second input
    size (``Profile.at_size``), e.g. ``256px``."""
    return f"{size}px"


@dataclasses.dataclass(frozen=True)
class Profile:
    """The settings of one profile (module docstring), each typed; ``path`` is the file they came from."""

    profile: str
    path: str = ""
    device: str = "cpu"
    image_size: int = 128
    data_root: str = "data"
    synthetic_preset: str = "default"
    synthetic_seed: int = 0
    datasets: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)  # Hetero-AE's (the paper: 5)
    baseline_seeds: tuple[int, ...] = (0,)
    method_seeds: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)  # over the two above
    ablation_datasets: tuple[str, ...] = ()
    ablation_seeds: tuple[int, ...] = (0,)
    ablation_settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # over Hetero-AE's, for ablations
    val_fraction: float = 0.1
    patience: int = 0
    min_delta: float = 0.0
    keep: str = "best"  # the weights a run with the rule keeps: "best" or "lowest" (TrainConfig.keep)
    lr_patience: int = 0  # lower the learning rate on the held-out plateau (TrainConfig.lr_patience); 0 = never
    lr_factor: float = 0.1
    precision: str = "fp32"
    torch_compile: bool | str = False
    train_jobs: int = 1
    train_jobs_methods: tuple[str, ...] | None = None  # None: every method trains side by side
    method_settings: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    complexity_size: int = 256
    # Table I again at a second input size (the paper's 256 px) for those of second_size_methods and
    # second_size_datasets the profile has, with their seeds (notebook table1_sizes); None: image_size only
    second_size: int | None = None
    second_size_datasets: tuple[str, ...] = ()
    second_size_methods: tuple[str, ...] = ()
    # Table I's verdicts again under a second stopping rule (patience and/or min_delta over the profile's,
    # e.g. doubled patience) for those of second_rule_methods and second_rule_datasets the profile has,
    # with their seeds (notebook table1_sensitivity); None: the profile's rule only
    second_rule: dict[str, Any] | None = None
    second_rule_datasets: tuple[str, ...] = ()
    second_rule_methods: tuple[str, ...] = ()
    data_subdir: str | None = None  # set by ``at_size``, not by a profile file: where its synthetic data are
    rule_note: str = ""  # set by ``under_rule``, not by a profile file: how its caps differ from the file's

    def at_size(self, size: int) -> Profile:
        """This profile at input size ``size``: every method at that size (per-method sizes dropped), and
        its synthetic data generated at that size in their own folder, ``<data root>/<size>px``
        (``RunSpec.data_subdir``), with no second size of its own; itself at its own size."""
        if size == self.image_size:
            return self
        settings = {m: {k: v for k, v in s.items() if k != "image_size"} for m, s in self.method_settings.items()}
        return dataclasses.replace(self, image_size=size, method_settings=settings, data_subdir=size_folder(size),
                                   second_size=None, second_size_datasets=(), second_size_methods=())

    def under_rule(self, rule: dict[str, Any]) -> Profile:
        """This profile under the stopping rule ``rule`` (``patience`` and/or ``min_delta``, as ``second_rule``
        gives them): the profile's values replaced (a method's own ``patience``/``min_delta`` dropped),
        and each method's cap (``epochs``) raised by the rise in patience, so that a run the profile's
        rule let reach its cap has room for the new rule to fire (else it would end there again: the
        same run); no second rule of its own."""
        rise = max(0, rule.get("patience", self.patience) - self.patience)
        settings = {m: {k: (v + rise if k == "epochs" else v) for k, v in s.items() if k not in _RULE}
                    for m, s in self.method_settings.items()}
        return dataclasses.replace(self, **rule, method_settings=settings, second_rule=None,
                                   second_rule_datasets=(), second_rule_methods=(),
                                   rule_note=f"caps +{rise}" if rise else "")

    def rule_label(self) -> str:
        """The stopping rule in words, e.g. 'patience 30, min_delta 0' ('..., caps +30' under a second rule
        that raised them)."""
        return f"patience {self.patience}, min_delta {self.min_delta:g}" + (f", {self.rule_note}" if self.rule_note else "")

    def method_seed_list(self, method: str) -> list[int]:
        """The seeds ``method`` runs over: ``method_seeds`` where it names the method, else Hetero-AE's
        ``seeds`` or the baselines' ``baseline_seeds``."""
        default = self.seeds if method == "hetero-ae" else self.baseline_seeds
        return list(self.method_seeds.get(method, default))


_SEQUENCES = {"datasets": str, "methods": str, "seeds": int, "baseline_seeds": int, "ablation_datasets": str,
              "ablation_seeds": int, "train_jobs_methods": str, "second_size_datasets": str,
              "second_size_methods": str, "second_rule_datasets": str, "second_rule_methods": str}
_RULE = {"patience": int, "min_delta": float}  # what second_rule may set
_SCALARS = {"profile": str, "device": str, "image_size": int, "data_root": str, "synthetic_preset": str,
            "synthetic_seed": int, "val_fraction": float, "patience": int, "min_delta": float, "keep": str, "precision": str,
            "lr_patience": int, "lr_factor": float,
            "train_jobs": int, "complexity_size": int}


def _typed(key: str, value: Any, where: str) -> Any:
    """``value`` as ``Profile.<key>`` holds it; UserError naming the file and the setting otherwise."""
    def bad(expected: str) -> UserError:
        return UserError(f"{where}: {key} must be {expected}, got {value!r}")

    if key in _SCALARS:
        kind = _SCALARS[key]
        if kind is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad("a number") from None
        if isinstance(value, bool) or not isinstance(value, (kind, int) if kind is float else kind):
            raise bad(f"a{'n' if kind is int else ''} {kind.__name__}")
        return kind(value)
    if key in _SEQUENCES:
        if value is None and key == "train_jobs_methods":
            return None
        if not isinstance(value, list) or not all(isinstance(v, _SEQUENCES[key]) and not isinstance(v, bool)
                                                  for v in value):
            raise bad(f"a list of {_SEQUENCES[key].__name__}")
        return tuple(value)
    if key == "second_size":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 16):
            raise bad("a size in pixels of 16 or more, or null")
        return value
    if key == "second_rule":
        if value is None:
            return None
        message = f"a mapping of {' and/or '.join(_RULE)} to numbers of 0 or more (patience a whole number), or null"
        if not isinstance(value, dict) or not value or set(value) - set(_RULE):
            raise bad(message)
        try:
            rule = {k: _typed(k, v, where) for k, v in value.items()}  # as the profile's own patience and min_delta
        except UserError:
            raise bad(message) from None
        if min(rule.values()) < 0:
            raise bad(message)
        return rule
    if key == "torch_compile":
        if not isinstance(value, (bool, str)):
            raise bad("true, false or a torch.compile backend")
        return value
    if key == "method_seeds":
        if not isinstance(value, dict) or not all(isinstance(s, list) for s in value.values()):
            raise bad("a mapping of method to a list of seeds")
        return {m: tuple(int(x) for x in s) for m, s in value.items()}
    if not isinstance(value, dict):  # ablation_settings, method_settings
        raise bad("a mapping")
    return dict(value)


def profile_from(settings: dict[str, Any], where: str = "profile") -> Profile:
    """A ``Profile`` from its settings (a YAML file's mapping); UserError naming ``where`` for an
    unknown setting or a value of the wrong type."""
    known = {f.name for f in dataclasses.fields(Profile)} - {"path", "data_subdir", "rule_note"}  # those two: derived
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {unknown}; known: {sorted(known)}")
    if "profile" not in settings:
        raise UserError(f"{where}: no 'profile' (its name)")
    profile = Profile(path=where, **{k: _typed(k, v, where) for k, v in settings.items()})
    if profile.second_size is not None:
        if profile.second_size == profile.image_size:
            raise UserError(f"{where}: second_size must differ from image_size ({profile.image_size})")
    if profile.second_rule is not None:
        _check_second_rule(profile, where)
    return profile


def _check_second_rule(profile: Profile, where: str) -> None:
    """UserError naming ``where`` when ``second_rule`` is the profile's own rule, or when a method it names
    sets its own ``patience``/``min_delta`` (its runs would not be under the rule the tables name)."""
    second = profile.under_rule(profile.second_rule)
    if (second.patience, second.min_delta) == (profile.patience, profile.min_delta):
        raise UserError(f"{where}: second_rule must differ from the profile's rule ({profile.rule_label()})")
    own = sorted(m for m in profile.second_rule_methods if set(profile.method_settings.get(m, {})) & set(_RULE))
    if own:
        raise UserError(f"{where}: second_rule compares the profile's rule with another, but {own} set their own "
                        f"patience or min_delta in method_settings")


def load_profile(name: str) -> Profile:
    """The profile ``name`` (``profiles/<name>.yaml``) or a YAML file, read and checked."""
    path = profile_path(name)
    try:
        settings = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(settings, dict):
        raise UserError(f"{path}: a profile is a mapping of settings")
    return profile_from(settings, str(path))


def main(argv: list[str] | None = None) -> int:
    """``python -m hetero_ae.experiment.profiles PROFILE SETTING...``: the settings' values, one per line
    (what ``run_all.sh`` asks of a profile); a bad profile is one line on stderr and status 2."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m hetero_ae.experiment.profiles", description=main.__doc__)
    parser.add_argument("profile")
    parser.add_argument("settings", nargs="+")
    a = parser.parse_args(argv)
    try:
        p = load_profile(a.profile)
        unknown = [s for s in a.settings if not hasattr(p, s)]
        if unknown:
            raise UserError(f"no setting(s) {unknown} in a profile")
    except UserError as e:
        print(f"hetero-ae: error: {e}", file=sys.stderr)
        return 2
    for name in a.settings:
        print(getattr(p, name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
