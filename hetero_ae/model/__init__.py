"""Hetero-AE model parts: encoder, MSTB attention, HCTN decoder and the auto-encoder."""

from .autoencoder import HeteroAE
from .decoder import DECODER_KINDS, HybridDecoder, build_decoder, decoders
from .encoder import ENCODERS, Encoder, build_encoder

__all__ = ["DECODER_KINDS", "ENCODERS", "Encoder", "HeteroAE", "HybridDecoder", "build_decoder", "build_encoder",
           "decoders"]
