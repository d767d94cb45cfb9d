"""The runs behind the notebooks' tables: which runs each table asks for, and running them (cached).

Table I (paper Sec. IV-C) compares the methods on every dataset; Tables II-IV (Sec. IV-E) and
Fig. 6 compare Hetero-AE's variants (``experiment.variants``) on the ablation datasets. Here every
method is run over the profile's seeds, and each run is cached (``experiment.run_experiment``), so
a notebook trains only what is missing. ``notebook_specs`` lists every run of the table notebooks
(``TABLE_NOTEBOOKS``): what ``hetero-ae run-profile`` trains ahead of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm  # a text bar: JupyterLab shows it in place, and it needs no widget library

from ..experiment.plan import plan_runs
from ..experiment.profiles import Profile
from ..experiment.runs import RunResult, run_experiments
from ..experiment.specs import RunSpec, profile_root, run_spec, spec_root
from ..experiment.variants import TABLE_II, TABLE_III, TABLE_IV, Variant
from ..methods import method_class, table_order
from ..model.encoder import resolve_backbone
from ..training.runtime import compile_backend
from .notebook_setup import present_datasets

NOTEBOOK_VARIANTS = {"table2_heterogeneous": TABLE_II, "table3_hctn": TABLE_III,
                     "table4_feature_comparison": TABLE_IV, "fig6_boxplots": TABLE_III}  # ablation rows per notebook
TABLE_NOTEBOOKS = ("table1_comparison", "table1_sizes", "table1_sensitivity", *NOTEBOOK_VARIANTS)  # the notebooks whose runs notebook_specs lists


def table1_specs(profile: Profile, datasets: Iterable[str], methods: Iterable[str]) -> list[RunSpec]:
    """The run of every (dataset, method, seed) of Table I, each method over its seeds
    (``Profile.method_seed_list``)."""
    methods = list(methods)
    return [run_spec(profile, dataset, method, seed) for dataset in datasets for method in methods
            for seed in profile.method_seed_list(method)]


def sizes_specs(profile: Profile) -> dict[int, list[RunSpec]]:
    """Table I's runs at the profile's two input sizes (``second_size``): per size, the run of every
    (dataset, method, seed) of ``second_size_datasets`` and ``second_size_methods`` that the profile
    has (in the paper's order), each method over its seeds; at the second size on data generated at it
    (``Profile.at_size``). Empty for a profile without a second size."""
    if profile.second_size is None:
        return {}
    methods = [m for m in table_order() if m in profile.second_size_methods and m in profile.methods]
    datasets = [d for d in profile.second_size_datasets if d in profile.datasets]
    return {size: table1_specs(profile.at_size(size), datasets, methods)
            for size in (profile.image_size, profile.second_size)}


def figure_specs(profile: Profile, datasets: Iterable[str], methods: Iterable[str]) -> list[RunSpec]:
    """The run a figure draws for each (dataset, method) (Fig. 4): the method's first seed, at the
    profile's ``second_size`` (the paper's 256 px) where Table I runs that method on that dataset
    there too (``sizes_specs``: both in the profile and named for the second size), else at its own size."""
    second = profile.at_size(profile.second_size) if profile.second_size is not None else None
    out = []
    for dataset in datasets:
        for method in methods:
            at = second if (second is not None and dataset in profile.second_size_datasets
                            and dataset in profile.datasets and method in profile.second_size_methods
                            and method in profile.methods) else profile
            out.append(run_spec(at, dataset, method, at.method_seed_list(method)[0]))
    return out


def weights_specs(profile: Profile, datasets: Iterable[str]) -> list[RunSpec]:
    """The runs whose trained weights the figures load, on ``datasets``: Fig. 4's (``figure_specs`` of
    ``heatmaps.figure_methods``) and Fig. 5's candidates (Hetero-AE's first seed at the profile's size,
    on each dataset: the notebook's ``tsne_dataset`` may be any). ``hetero-ae run-profile`` keeps their
    ``weights.pt`` as each finishes (``experiment.runs.keep_run_weights``), so that the committed
    results draw the figures without training those runs again."""
    from .heatmaps import figure_methods

    datasets = list(datasets)
    specs = figure_specs(profile, datasets, [m for m in figure_methods(profile.methods) if m in profile.methods])
    if "hetero-ae" in profile.methods:
        specs += [run_spec(profile, d, "hetero-ae", profile.seeds[0]) for d in datasets]  # as fig5_tsne picks it
    return specs


def rule_specs(profile: Profile, datasets: Iterable[str] | None = None) -> dict[str, list[RunSpec]]:
    """Table I's runs under the profile's stopping rule and under its ``second_rule``
    (``Profile.under_rule``, which also raises the caps by the rise in patience): per rule (its words,
    ``Profile.rule_label``), the run of every (dataset, method, seed) of ``second_rule_datasets`` and
    ``second_rule_methods`` that the profile has (in the paper's order), each method over its seeds;
    of ``datasets`` only where given (those on disk). A method that trains every epoch whatever the
    rule (``AnomalyModel.stops_early`` False: f-AnoGAN) or learns no weight keeps its one run under
    both. Empty for a profile without a second rule, or where no (dataset, method) is left."""
    if profile.second_rule is None:
        return {}
    methods = [m for m in table_order() if m in profile.second_rule_methods and m in profile.methods]
    on_disk = None if datasets is None else set(datasets)  # read once: an iterator is consumed by the first test
    datasets = [d for d in profile.second_rule_datasets if d in profile.datasets and (on_disk is None or d in on_disk)]
    if not methods or not datasets:
        return {}
    second = profile.under_rule(profile.second_rule)

    def ruled(method: str) -> Profile:
        cls = method_class(method)
        return second if cls.stops_early and cls.trains_weights else profile

    return {profile.rule_label(): table1_specs(profile, datasets, methods),
            second.rule_label(): [spec for dataset in datasets for method in methods
                                  for spec in table1_specs(ruled(method), [dataset], [method])]}


def run_specs(profile: Profile, specs: Iterable[RunSpec], *, results: str | Path = "results") -> list[RunResult]:
    """The cached result of each spec, run on the profile's device with its ``torch_compile`` setting.

    When some must train, it first says how many, why and for about how long
    (``experiment.plan``), then shows a progress bar over them and over each run's epochs.
    """
    specs = list(specs)
    plan = plan_runs(specs, results=results, root=profile.data_root, device=profile.device)
    if not plan.missing:
        return plan.cached
    print("\n".join(plan.lines(f"{len(plan.missing)} run(s) to train")), flush=True)
    with tqdm(total=len(plan.missing), desc="runs trained", unit="run") as bar:
        return run_experiments(specs, results=results, root=profile.data_root, device=profile.device,
                               compile=compile_backend(profile.torch_compile), progress=True,
                               on_done=lambda spec, folder, cached: None if cached else bar.update())


def run_all(profile: Profile, datasets: Iterable[str], methods: Iterable[str], *,
            results: str | Path = "results") -> list[RunResult]:
    """The cached result of every (dataset, method, seed) of ``methods`` (``table1_specs``)."""
    return run_specs(profile, table1_specs(profile, datasets, methods), results=results)


def variant_overrides(v: Variant) -> tuple[dict[str, str], str]:
    """A variant's ModelConfig fields on this machine, and the encoder it really runs with.

    A row built on an ImageNet backbone whose weights are not here (ResNet-18 offline) runs
    with the offline EfficientNet-Lite0 instead (DESIGN 4); the tables print the encoder used.
    """
    o = v.overrides()
    if o["encoder_weights"] == "imagenet":
        o["encoder"] = resolve_backbone(o["encoder"])
    return o, o["encoder"]


def variant_specs(cfg: Profile, variants: Iterable[Variant], datasets: Iterable[str],
                  seeds: Iterable[int]) -> list[tuple[Variant, RunSpec]]:
    """The runs of ablation rows (Tables II-IV, Fig. 6): Hetero-AE with each variant's parts.

    Rows that resolve to the same configuration (HCTN in Tables II-IV; ResNet rows that fall
    back to EfficientNet-Lite0) share one run through the cache. A profile's
    ``ablation_settings`` (e.g. fewer epochs on a CPU) go over its Hetero-AE settings here.
    """
    if cfg.ablation_settings:
        settings = cfg.method_settings
        cfg = replace(cfg, method_settings={**settings, "hetero-ae": {**settings["hetero-ae"], **cfg.ablation_settings}})
    variants, seeds = list(variants), list(seeds)
    return [(v, run_spec(cfg, dataset, "hetero-ae", seed, **variant_overrides(v)[0]))
            for dataset in datasets for v in variants for seed in seeds]


def variant_runs(cfg: Profile, variants: Iterable[Variant], datasets: Iterable[str], *,
                 results: str | Path = "results") -> list[tuple[Variant, RunResult]]:
    """The cached runs of ablation rows (``variant_specs``, over the profile's ``ablation_seeds``), each with its variant."""
    pairs = variant_specs(cfg, variants, datasets, cfg.ablation_seeds)
    runs = run_specs(cfg, [spec for _, spec in pairs], results=results)
    return [(v, r) for (v, _), r in zip(pairs, runs, strict=True)]


def notebook_specs(profile: Profile, notebooks: Iterable[str] | None = None,
                   root: str | Path | None = None, *, verbose: bool = True) -> list[RunSpec]:
    """Every run the table notebooks (``TABLE_NOTEBOOKS``) of a profile ask for, or those of ``notebooks``, once each.

    Table I's (``table1_comparison``; Fig. 4 and Fig. 5 use some of them), Table I's at two sizes
    (``table1_sizes``: ``sizes_specs``), Table I's under a second stopping rule (``table1_sensitivity``:
    ``rule_specs``) and the ablations' (Tables II-IV and Fig. 6), on the profile's datasets that are on disk: what ``hetero-ae
    run-profile`` trains ahead of the notebooks, so that they find every run in the cache.
    """
    wanted = set(TABLE_NOTEBOOKS if notebooks is None else notebooks)  # other notebooks: no runs of their own
    specs: list[RunSpec] = []
    if "table1_comparison" in wanted:
        methods = [m for m in table_order() if m in profile.methods]
        present = [d for d in profile.datasets if present_datasets([d], profile_root(profile, d, root), verbose=verbose)]
        specs += table1_specs(profile, present, methods)
    if "table1_sizes" in wanted:
        specs += [spec for size_specs in sizes_specs(profile).values() for spec in size_specs
                  if present_datasets([spec.dataset], spec_root(spec, root), verbose=verbose)]
    if "table1_sensitivity" in wanted:
        specs += [spec for rule_specs_ in rule_specs(profile).values() for spec in rule_specs_
                  if present_datasets([spec.dataset], spec_root(spec, root), verbose=verbose)]
    ablations = [variants_ for name, variants_ in NOTEBOOK_VARIANTS.items() if name in wanted]
    if ablations:
        datasets = [d for d in profile.ablation_datasets
                    if present_datasets([d], profile_root(profile, d, root), verbose=verbose)]
        for variants_ in ablations:
            specs += [spec for _, spec in variant_specs(profile, variants_, datasets, profile.ablation_seeds)]
    unique: dict[str, RunSpec] = {}  # runs shared by several tables once, in first-asked order
    for spec in specs:
        unique.setdefault(json.dumps(spec.key_dict(), sort_keys=True), spec)
    return list(unique.values())
