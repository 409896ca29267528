"""The MONAI engine: 3D U-Net and SegResNet networks, their transforms, sampling and losses, training with an
iteration budget and validation-based checkpoint selection, and the calibration of the lesion threshold.

Its models are livermets model folders (``config.yaml`` + ``model.safetensors``); the shipped model is one. Prediction
goes through the one dispatcher, :func:`livermets.segmentation.load_segmenter`.
"""
