"""tfcae: green learned image compression on TensorFlow Compression."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

# The one set that installs and imports together on Python 3.11: TFC 2.14.1 pins
# tensorflow~=2.14.0; tensorflow-datasets needs tensorflow-metadata<1.15 because
# newer ones require protobuf 5, which TF 2.14 refuses. constraints.txt pins the
# exact versions CI uses.
INSTALL_REQUIRES = [
    "tensorflow~=2.14.0",
    "tensorflow-compression==2.14.1",
    "tensorflow-probability~=0.22.0",
    "tensorflow-model-optimization~=0.8.0",
    "tensorflow-datasets>=4.9,<4.10",
    "tensorflow-metadata<1.15",
    "protobuf<4",
    "numpy<2",
    "absl-py>=1.0",
    "Pillow>=10",
    "pillow-heif>=0.16",
    # PNGs too large to hold twice, read and written row by row (tfcae.io.fileio).
    "pypng>=0.20220715",
    "matplotlib>=3.7",
    # Bjontegaard delta rates (tfcae.evaluation.bdrate): the package CompressAI uses.
    "bjontegaard>=1.3,<2",
    "scipy>=1.9",  # tfcae.evaluation.bdrate's pchip interpolation (also bjontegaard's)
]

setup(
    name="tfcae",
    version="0.1.0",
    description="Compressive autoencoders with cheap encoders, on TensorFlow Compression",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9,<3.12",
    packages=find_packages(include=["tfcae", "tfcae.*"]),
    # One command, `tfcae <command>`; bin/<command> runs the same from a checkout.
    entry_points={"console_scripts": ["tfcae=tfcae.cli:main"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6"],
        # LiteRT, the TFLite runtime devices ship (tfcae.deploy.tflite.interpreter_class):
        # its XNNPACK runs int8 encoders faster than TF 2.14's bundled interpreter does.
        "device": ["ai-edge-litert>=2.3,<3"],
        # Energy and CO2 of training runs, offline (tfcae.training.energy).
        "energy": ["codecarbon>=3,<4"],
    },
    license="Apache-2.0",
)
