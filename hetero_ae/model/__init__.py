"""Hetero-AE's network parts (paper Sec. III-A/B): the CNN encoders, MSTB attention, the HCTN
decoder, and the feature-comparison loss (Eq. 4-5) and anomaly map (Eq. 6-8) they are trained and
scored with. The registered method that puts them together is ``hetero_ae.methods.hetero_ae``."""

from .decoder import DECODER_KINDS, HybridDecoder, build_decoder, decoders
from .encoder import ENCODERS, Encoder, build_encoder

__all__ = ["DECODER_KINDS", "ENCODERS", "Encoder", "HybridDecoder", "build_decoder", "build_encoder", "decoders"]
