from setuptools import find_packages, setup

setup(
    name="mitoseg-tf",
    version="0.1.0",
    description="Keras 3 model zoo for segmenting and counting mitotic figures in H&E images",
    python_requires=">=3.10",
    # The code; shipped weights carry the terms of the data they were trained on (their cards, `mitoseg weights`).
    license="MIT",
    license_files=["LICENSE"],
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
    # Only the library: the top-level `datasets/` and `zoo/` folders are docs and
    # must never be installed as packages (a `datasets` package would shadow
    # Hugging Face's library).
    packages=find_packages(include=["mitoseg_tf", "mitoseg_tf.*"]),
    # trained weights shipped with the zoo (float16, a few MB each)
    package_data={"mitoseg_tf.zoo": ["weights/*.weights.h5", "weights/manifest.json"]},
    install_requires=[
        "keras>=3.8",
        "tensorflow>=2.18",
        "tensorflow-datasets>=4.9",
        "numpy",
        "matplotlib",
        "pillow",
        "scikit-image",
        "scipy",
        "pyyaml",  # training recipes
        "tqdm",  # progress bars of predict, evaluate and slides
        "opencv-python-headless",  # fast decoding of large fields
        # Whole slides: OpenSlide with its own binary wheel (no system package), tiffslide as the
        # pure-Python fallback for tiled TIFF / SVS when OpenSlide cannot load.
        "openslide-python",
        "openslide-bin",
        "tiffslide",
        "tifffile",
    ],
    extras_require={
        # jax lets the tests prove the zoo runs on a second backend without TensorFlow.
        "test": [
            "pytest",
            "pytest-timeout",
            "pytest-xdist",
            "jax",
            "nbclient",
            "nbformat",
            "ipykernel",
            # GeoJSON checked by means independent of the package's own validator
            "shapely",
            "geojson",
            # the one code style (ruff.toml), pinned because a new formatter release may restyle code
            "ruff==0.17.6",
            # the optional ONNX Runtime path is compared with TensorFlow's maps and figures (tests/inference/test_runtimes.py)
            "onnxruntime",
            "tf2onnx",
        ],
        # `Detector(runtime="onnxruntime")` / `mitoseg slide --runtime onnxruntime`: 2x TensorFlow's speed on a
        # 2-core AVX2 CPU with the same figures (benchmarks/slide_runtimes.py)
        "onnx": ["onnxruntime", "tf2onnx"],
        # `jupyter nbconvert --execute notebooks/*.ipynb` (see notebooks/README.md)
        "notebooks": ["jupyter", "nbconvert", "ipykernel"],
        "bench": ["torch"],
    },
    entry_points={"console_scripts": ["mitoseg=mitoseg_tf.cli.main:main"]},
)
