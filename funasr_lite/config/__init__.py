"""Configuration: FunASR config.yaml files read strictly into typed sections, and merged in layers with
the source of every value recorded."""
