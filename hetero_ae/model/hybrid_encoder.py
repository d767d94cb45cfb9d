"""Hybrid and Transformer encoders for the ablations of paper Sec. IV-E (Tables II and IV).

Table II's homogeneous "CNN+Trans / CNN+Trans" row puts the same hybrid network on both sides
of the auto-encoder, and Table IV's "E-D (Transformer)" puts Transformers on both sides. The
paper describes neither encoder beyond its name, so both are built here from the decoder's own
parts (``HybridBlock``: 1x1 split, two branches, concat, 1x1 fuse; ``decoder.py``):

- a stem of two stride-2 3x3 Conv-BN-ReLU convolutions (3 -> C_1 / 2 -> C_1, stride 4);
- four stages at strides 4, 8, 16, 32 with ResNet-18's channels (64, 128, 256, 512), so that
  the decoders built for ResNet-18 fit unchanged; stages 2-4 start with a stride-2 2x2
  convolution + BatchNorm (CMT's patch aggregation, with BatchNorm as the maps are (B, C, H, W));
- each stage is one hybrid block with a residual connection around it, x + HybridBlock(x),
  as the stages of classification backbones (ResNet, CMT, PVT) have;
- ``hybrid``: convolution block + MSTB branches (HCTN's module, decoder kind ``hctn``);
  ``transformer``: both branches are MSTBs (decoder kind ``transformer``);
- MSTB settings continue the decoder's pattern to a fourth stage: heads 2, 4, 8, 16 (d_head = 32
  everywhere) and p2 = 8, 4, 2, 2 (p2 = 2 at stride 32, so a 64 px input still has one patch).

Weights: none exist (no ImageNet checkpoint was published for either network, and this
project trains encoders on nothing). The encoder is therefore random and frozen: its weights
are PyTorch's default initialisation drawn from the run's seed (``seed.build_seeded`` seeds
before building), BatchNorm in eval mode with its initial statistics (the identity). A run's
checkpoint does not store it; it is rebuilt from the seed and checked against the digest.
``weights="imagenet"`` is an error; a file path loads a state dict the user trained.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..config import EMBEDDING_SIZE
from ..errors import ConfigError
from .backbone import Encoder, existing_file, load_state
from .decoder import DECODER_KINDS, BranchFactory, HybridBlock

HEADS = (2, 4, 8, 16)
P2 = (8, 4, 2, 2)


class ResidualHybridBlock(HybridBlock):
    """x + HybridBlock(x): one encoder stage's block, at constant channels and resolution."""

    def forward(self, x: Tensor) -> Tensor:
        return x + super().forward(x)


class Downsample(nn.Sequential):
    """A stride-2 2x2 convolution + BatchNorm between stages (CMT's patch aggregation)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel_size=2, stride=2, bias=False), nn.BatchNorm2d(cout))


class HybridBranchEncoder(Encoder):
    """A stem and four hybrid stages; subclasses choose the two branches (``kind`` of ``DECODER_KINDS``)."""

    channels = (64, 128, 256, 512)
    name: str  # the encoder's name in ENCODERS
    kind: str  # its branches, a key of DECODER_KINDS
    size_multiple = 64  # MSTB's p2 x p2 patches of each stage's grid: 8 at stride 4 ... 2 at stride 32
    takes_embedding_size = True  # its MSTBs store position embeddings (``build_encoder``)

    def __init__(self, *, weights: str = "none", mode: str = "frozen", embedding_size: int = EMBEDDING_SIZE) -> None:
        super().__init__(mode=mode)
        if weights == "imagenet":
            raise ConfigError(
                f"no pretrained weights exist for the {self.name!r} encoder (the paper publishes none): use "
                "encoder_weights='none' for a random frozen encoder seeded by the run's seed, or a weights file"
            )
        branches: tuple[BranchFactory, BranchFactory] = DECODER_KINDS[self.kind]
        c = self.channels
        self.stem = nn.Sequential(_strided(3, c[0] // 2), _strided(c[0] // 2, c[0]))
        self.down = nn.ModuleList([nn.Identity(), *(Downsample(a, b) for a, b in zip(c[:-1], c[1:]))])
        self.blocks = nn.ModuleList(
            ResidualHybridBlock(dim, dim, heads=h, p2=p2, grid=embedding_size // s, branches=branches)
            for dim, h, p2, s in zip(c, HEADS, P2, self.strides)
        )
        if weights != "none":
            self.load_state_dict(load_state(existing_file(weights)))
        self.freeze()

    def features(self, x: Tensor, stages: int = 4) -> list[Tensor]:
        feats = []
        x = self.stem(x)
        for down, block in list(zip(self.down, self.blocks))[:stages]:
            x = block(down(x))
            feats.append(x)
        return feats


def _strided(cin: int, cout: int) -> nn.Sequential:
    """A stride-2 3x3 Conv-BN-ReLU (the stem's)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class HybridEncoder(HybridBranchEncoder):
    """CNN+Trans encoder: convolution block + MSTB in every stage (Table II, "CNN+Trans / CNN+Trans")."""

    name, kind = "hybrid", "hctn"


class TransformerEncoder(HybridBranchEncoder):
    """Transformer encoder: two MSTBs in every stage (Table IV, "E-D (Transformer)")."""

    name, kind = "transformer", "transformer"
