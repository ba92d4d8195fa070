#!/bin/bash
# Run here, before a device run: what the device machine lacks (it reaches no network), into .device/
# (git-ignored; name it in the run's carry). Its image holds torch, onnx, onnxruntime, scipy,
# scikit-learn and click, not pydantic; Fashion-MNIST travels as its four IDX files (30 MB).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .device/fashion-mnist .device/wheels
cp "${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"/*-ubyte* .device/fashion-mnist/
python3 -m pip download --quiet --only-binary=:all: --python-version "${DEVICE_PYTHON:-3.12}" \
    --platform manylinux2014_x86_64 --implementation cp --dest .device/wheels pydantic
du -sh .device
