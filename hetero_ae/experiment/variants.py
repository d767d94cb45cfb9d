"""The named ablation variants of paper Sec. IV-E as data: Tables II, III and IV.

Every row is one configuration of the single ``HeteroAE`` class (``methods/hetero_ae.py``):
an encoder and a decoder by registry name, the encoder's weights, and what the decoder is
compared with. Beside it are the numbers the paper printed for that row (in %, and Param in
10^6, FLOPs in 10^9), transcribed from the paper; the tables put ours next to them.

- Table II: homogeneous (same network on both sides) against heterogeneous (ResNet encoder,
  Transformer or hybrid decoder) frameworks; AUC, F1, ACC on chest X-ray and brain MRI,
  Param and FLOPs.
- Table III: the HCTN decoder against its all-CNN and all-Transformer versions (ResNet
  encoder); AUC, F1, ACC, SEN, SPE and Param.
- Table IV: three auto-encoders with and without feature comparison; AUC, F1, ACC, SEN, SPE;
  and one row beyond the paper (``hetero-ae-magnitude``, no printed numbers): Hetero-AE with
  the magnitude-aware map ``map_distance="cosine+mse"``.

Mapping of the paper's names onto ours (where the paper does not say, docs/reproduction-notes.md):
"ResNet" is ResNet-18 with ImageNet weights (the paper's encoder, Sec. III-B1);
"ResNet (CNN)" decoder is a mirrored ResNet-18 (RD4AD's reverse ResNet, decoder ``resnet``);
"Efficientnet" is EfficientNet-Lite0 (the ImageNet EfficientNet this project ships) and its
decoder the ``efficientnet`` kind (MBConv branches); "CNN+Trans" on both sides is the
``hybrid`` encoder with the ``hctn`` decoder; "E-D (Transformer)" is the ``transformer``
encoder with the ``transformer`` decoder (Trans+Trans). The hybrid and Transformer encoders
have no pretrained weights: they are random, frozen and seeded by the run's seed
(``encoder_weights="none"``, ``model/hybrid_encoder.py``). Table IV's "E-D (ResNet)" with
feature comparison is Table II's "ResNet / ResNet (CNN)" row and its "Our Hetero-AE" rows
are HCTN's; the paper prints the same numbers for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import ModelConfig, check_choice

Metrics = dict[str, float]  # metric ("auc", "f1", "acc", "sen", "spe") -> % as printed


@dataclass(frozen=True)
class Variant:
    """One row of an ablation table: a HeteroAE configuration and the paper's numbers for it."""

    table: str  # "II", "III" or "IV"
    key: str  # a stable short name, unique within its table
    label: str  # the row as the paper labels it
    encoder: str  # a name of model.encoder.ENCODERS
    decoder: str  # a name of model.decoder.decoders()
    paper: dict[str, Metrics] = field(hash=False)  # dataset -> the printed metrics
    encoder_weights: str = "imagenet"
    comparison: str = "feature"  # "feature" or "pixel" (Table IV's "without feature comparison")
    map_distance: str = "cosine"  # the per-stage map (Eq. 6, or "cosine+mse": beyond the paper)
    group: str = ""  # Table II: "homogeneous" or "heterogeneous"
    paper_params_m: float | None = None  # Param (10^6)
    paper_gflops: float | None = None  # FLOPs (10^9)

    def overrides(self) -> dict[str, str]:
        """The ModelConfig fields this variant sets (e.g. for ``profiles.run_spec(..., **overrides)``)."""
        return {"encoder": self.encoder, "encoder_weights": self.encoder_weights, "decoder": self.decoder,
                "comparison": self.comparison, "map_distance": self.map_distance}

    def model_config(self, **fields: object) -> ModelConfig:
        """A Hetero-AE ModelConfig of this variant; ``fields`` override any field (e.g. image_size)."""
        return ModelConfig(**{"method": "hetero-ae", **self.overrides(), **fields})



def _m(names: str, values: str) -> Metrics:
    return dict(zip(names.split(), map(float, values.split()), strict=True))


def _ii(key: str, label: str, group: str, encoder: str, decoder: str, chest: str, brain: str, params: float,
        gflops: float, weights: str = "imagenet") -> Variant:
    return Variant("II", key, label, encoder, decoder, {"chest-xray": _m("auc f1 acc", chest),
                   "brain-mri": _m("auc f1 acc", brain)}, encoder_weights=weights, group=group,
                   paper_params_m=params, paper_gflops=gflops)


def _v(table: str, key: str, label: str, encoder: str, decoder: str, chest: str, brain: str, *,
       params: float | None = None, weights: str = "imagenet", comparison: str = "feature") -> Variant:
    five = "auc f1 acc sen spe"
    return Variant(table, key, label, encoder, decoder, {"chest-xray": _m(five, chest), "brain-mri": _m(five, brain)},
                   encoder_weights=weights, comparison=comparison, paper_params_m=params)


TABLE_II: tuple[Variant, ...] = (
    _ii("resnet-resnet", "ResNet / ResNet (CNN)", "homogeneous", "resnet18", "resnet",
        "85.72 84.77 80.76", "95.50 94.02 91.53", 13, 39),
    _ii("efficientnet-efficientnet", "Efficientnet / Efficientnet (CNN)", "homogeneous", "efficientnet-lite0",
        "efficientnet", "84.09 82.59 78.04", "94.50 93.33 90.61", 20, 26),
    _ii("hybrid-hybrid", "CNN+Trans / CNN+Trans", "homogeneous", "hybrid", "hctn",
        "85.40 83.12 78.20", "92.69 92.72 89.77", 21, 30, weights="none"),
    _ii("resnet-swin", "ResNet / Swin (Transformer)", "heterogeneous", "resnet18", "swin",
        "86.20 84.61 79.00", "96.63 94.53 92.29", 30, 48),
    _ii("resnet-pvt", "ResNet / PVT (Transformer)", "heterogeneous", "resnet18", "pvt",
        "85.94 84.27 78.04", "96.38 94.39 92.06", 23, 45),
    _ii("resnet-cmt", "ResNet / CMT (Hybrid)", "heterogeneous", "resnet18", "cmt",
        "86.29 85.35 81.09", "97.53 97.61 96.64", 24, 39),
    _ii("resnet-hctn", "ResNet / Our HCTN (Hybrid)", "heterogeneous", "resnet18", "hctn",
        "90.13 88.22 84.93", "99.20 98.68 98.16", 17, 33),
)

TABLE_III: tuple[Variant, ...] = (
    _v("III", "cnn", "ResNet / CNN+CNN", "resnet18", "cnn",
       "85.54 82.51 78.20 82.30 71.30", "93.92 92.99 90.38 92.38 85.92", params=17.90),
    _v("III", "transformer", "ResNet / Trans+Trans", "resnet18", "transformer",
       "87.49 85.93 82.85 83.84 81.19", "97.44 94.86 92.82 95.91 85.93", params=16.74),
    _v("III", "hctn", "ResNet / CNN+Trans (HCTN)", "resnet18", "hctn",
       "90.13 88.22 84.93 90.25 76.06", "99.20 98.68 98.16 99.66 94.81", params=17.32),
)

TABLE_IV: tuple[Variant, ...] = (
    _v("IV", "ed-resnet-pixel", "E-D (ResNet), without feature comparison", "resnet18", "resnet",
       "81.82 80.09 74.35 82.56 60.68", "91.13 91.37 88.02 91.83 79.50", comparison="pixel"),
    _v("IV", "ed-resnet-feature", "E-D (ResNet), with feature comparison", "resnet18", "resnet",
       "85.72 84.77 80.76 85.64 72.64", "95.50 94.02 91.53 96.46 80.49"),
    _v("IV", "ed-transformer-pixel", "E-D (Transformer), without feature comparison", "transformer", "transformer",
       "78.89 80.22 72.43 89.48 44.01", "89.89 90.71 87.18 90.61 79.50", weights="none", comparison="pixel"),
    _v("IV", "ed-transformer-feature", "E-D (Transformer), with feature comparison", "transformer", "transformer",
       "82.76 83.29 77.88 88.20 60.68", "93.72 92.86 90.16 92.60 84.69", weights="none"),
    _v("IV", "hetero-ae-pixel", "Our Hetero-AE, without feature comparison", "resnet18", "hctn",
       "85.91 83.33 77.88 88.46 60.25", "94.00 93.11 90.38 94.03 82.22", comparison="pixel"),
    _v("IV", "hetero-ae-feature", "Our Hetero-AE, with feature comparison", "resnet18", "hctn",
       "90.13 88.22 84.93 90.25 76.06", "99.20 98.68 98.16 99.66 94.81"),
    # Beyond the paper (no printed numbers): the same trained model scored with Eq. 4's per-pixel loss,
    # which also sees a change of feature magnitude (anomaly_map, docs/reproduction-notes.md, note 21).
    Variant("IV", "hetero-ae-magnitude", "Beyond the paper: our Hetero-AE, map of cosine + MSE", "resnet18", "hctn",
            {}, map_distance="cosine+mse"),
)

TABLES: dict[str, tuple[Variant, ...]] = {"II": TABLE_II, "III": TABLE_III, "IV": TABLE_IV}


def variant(table: str, key: str) -> Variant:
    """The row ``key`` of ``table`` ("II", "III" or "IV")."""
    check_choice("table", table, tuple(sorted(TABLES)))
    rows = {v.key: v for v in TABLES[table]}
    check_choice(f"table {table} variant", key, tuple(sorted(rows)))
    return rows[key]


def all_variants() -> list[Variant]:
    """Every row of Tables II-IV, in table order."""
    return [v for rows in TABLES.values() for v in rows]


def distinct_variants() -> list[Variant]:
    """One variant per distinct configuration (several rows share one, e.g. HCTN in all three tables)."""
    seen: dict[tuple[str, ...], Variant] = {}
    for v in all_variants():
        seen.setdefault(tuple(v.overrides().values()), v)
    return list(seen.values())
