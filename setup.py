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
    },
)
