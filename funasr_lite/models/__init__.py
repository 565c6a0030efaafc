"""Models: the network blocks (SANM encoder, CIF predictor, SANM decoder, CTC, SpecAugLFR) and the models
built from them (Paraformer). Parameter names are FunASR's, so FunASR checkpoints load strictly."""
