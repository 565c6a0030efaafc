"""Models: the network blocks (SANM encoder, CIF predictor, SANM decoder, CTC, SpecAugLFR), the models built
from them (Paraformer, ContextualParaformer), training hotwords sampled from targets, and the registry that maps
FunASR class names (1.x and 0.x) to them. Parameter names are FunASR's, so FunASR checkpoints load strictly."""
