"""Liver and lesion segmentation with MONAI 3D U-Net / SegResNet: training, prediction, post-processing."""
