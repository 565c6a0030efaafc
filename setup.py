from setuptools import find_packages, setup

setup(
    name="funasr_lite",
    version="0.1.0",
    description="Paraformer inference, finetuning and CER scoring, compatible with FunASR model dirs",
    packages=find_packages(include=["funasr_lite", "funasr_lite.*"]),
    package_data={"funasr_lite": ["config/funasr_names.yaml"]},
    python_requires=">=3.9",
    entry_points={"console_scripts": ["funasr-lite=funasr_lite.cli.main:main"]},
    install_requires=[
        "torch",
        "torchaudio",
        "soundfile",
        "modelscope",
        "pyyaml",
        "editdistance",
        "tqdm",
        "tensorboard",
        "matplotlib",
    ],
    extras_require={
        # funasr is a test oracle only: never imported by the library itself.
        "test": ["pytest", "hypothesis", "ruff", "funasr==1.4.16", "jieba"],
        # the word-level cn-en punctuation model (a dir with a jieba_usr_dict) cuts words with jieba
        "punc": ["jieba"],
        # tools/bench_infer.py's other columns: FunASR's ONNX export (onnx) run by funasr-onnx (onnxruntime) and
        # sherpa-onnx. Benchmark only, never imported by the library. funasr-onnx 0.4.3 pins numpy<=1.26.4:
        # install this extra in a separate environment if the numpy downgrade matters.
        "bench": ["funasr==1.4.16", "onnx", "onnxscript", "onnxruntime", "funasr-onnx", "sherpa-onnx"],
    },
)
